"""The browser pages: a playground that shows why each answer came from the adapter it came from, and an
operator page for adapters and the router. Plain HTML, CSS and ES modules: nothing to build or install."""

from pathlib import Path

STATIC = Path(__file__).parent / "static"
