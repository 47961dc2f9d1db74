"""HTTP API for publishing from outside (stub: filled in by the HTTP API work)."""

from aiohttp import web

from kpk_io.config import Settings
from kpk_io.metrics import Metrics
from kpk_io.store.base import StateStore


def add_api_routes(
    app: web.Application, store: StateStore, settings: Settings, metrics: Metrics
) -> None:
    """Add /api/rooms/{room} routes (not yet)."""
