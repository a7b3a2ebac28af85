"""The one place that picks the router-version store: it imports both implementations; neither imports it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from router.routing.store import RouterStore, RouterVersionStore

if TYPE_CHECKING:
    from router.settings import Settings


def open_router_store(settings: Settings) -> RouterVersionStore:
    """The versions shared through PostgreSQL when ``database_url`` is set (``router_dir`` caching them),
    else those in ``router_dir``."""
    backend, threads = settings.router_backend, settings.router_threads
    if settings.database_url:
        # Imported here so that a service without a database never loads the PostgreSQL driver.
        from router.routing.shared_store import PostgresRouterStore

        url = settings.database_url
        return PostgresRouterStore(url, settings.router_dir, backend=backend, threads=threads)
    return RouterStore(settings.router_dir, backend=backend, threads=threads)
