"""The browser pages (``/ui``, ``/ui/operator``) and their static files. Out of the OpenAPI schema: they are
pages, not API; what they do goes through the API with the key typed into them."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

from router.ui import STATIC

router = APIRouter(include_in_schema=False)

# Served by name from this fixed set, so no request path can reach any other file.
_FILES = {path.name: path for path in STATIC.iterdir() if path.suffix in {".css", ".js", ".html"}}
_TYPES = {".css": "text/css", ".js": "text/javascript", ".html": "text/html"}


def _file(name: str) -> FileResponse:
    path = _FILES[name]
    return FileResponse(path, media_type=_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui")


@router.get("/ui")
async def playground() -> FileResponse:
    return _file("playground.html")


@router.get("/ui/operator")
async def operator() -> FileResponse:
    return _file("operator.html")


@router.get("/ui/static/{name}")
async def static(name: str) -> FileResponse:
    if name not in _FILES:
        raise HTTPException(404, f"no such file: {name!r}")
    return _file(name)
