"""The browser client, the demo and the index page (stub: filled in by the browser work)."""

from aiohttp import web


def add_page_routes(app: web.Application) -> None:
    """Serve web/ (not yet)."""
