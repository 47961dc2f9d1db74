"""create_app(settings): wires store, hub, Socket.IO server and HTTP routes into one app."""

import asyncio
import logging

from aiohttp import web

from kpk_io.api import add_api_routes
from kpk_io.config import Settings
from kpk_io.handlers import Handlers
from kpk_io.hub import Hub
from kpk_io.metrics import Metrics
from kpk_io.pages import add_page_routes
from kpk_io.server import build_server, drop_transport
from kpk_io.store.base import SECONDS_PER_DAY, StateStore, StoreUnavailable
from kpk_io.store.memory import MemoryStateStore
from kpk_io.store.redis import RedisStateStore

log = logging.getLogger(__name__)

STORE = web.AppKey("store", StateStore)
METRICS = web.AppKey("metrics", Metrics)
SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", Hub)
HANDLERS = web.AppKey("handlers", Handlers)


def create_store(settings: Settings) -> StateStore:
    if settings.redis_url is None:
        log.warning(
            "no Redis configured: running on the embedded in-memory store; "
            "state lives in this process only and is lost when it exits"
        )
        return MemoryStateStore(settings.history, history_bytes=settings.history_bytes,
                                room_ttl=settings.room_ttl * SECONDS_PER_DAY)
    return RedisStateStore(settings.redis_url, prefix=settings.key_prefix,
                           history=settings.history, history_bytes=settings.history_bytes,
                           room_ttl=settings.room_ttl * SECONDS_PER_DAY)


def create_app(settings: Settings) -> web.Application:
    app = web.Application()
    store = create_store(settings)
    metrics = Metrics()
    sio, hub, handlers = build_server(settings, store, metrics)
    sio.attach(app)
    app[STORE] = store
    app[METRICS] = metrics
    app[SETTINGS] = settings
    app[HUB] = hub
    app[HANDLERS] = handlers
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    add_api_routes(app, store, settings, metrics)
    add_page_routes(app)

    async def drain(app: web.Application) -> None:
        await _drain(handlers, settings.shutdown_timeout)
        for eio_sid in list(sio.eio.sockets):
            await drop_transport(sio, eio_sid)
        await sio.shutdown()

    async def close(app: web.Application) -> None:
        await _close(hub, store)

    app.on_shutdown.append(drain)
    app.on_cleanup.append(close)
    return app


async def _drain(handlers: Handlers, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await handlers.drain()
    except TimeoutError:
        log.warning("shut down before every running request was answered")


async def _close(hub: Hub, store: StateStore) -> None:
    await hub.close()
    await store.close()


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(request.app[STORE].ping(), 2.0)
    except (StoreUnavailable, TimeoutError) as exc:
        return web.json_response({"status": "unavailable", "reason": str(exc)}, status=503)
    return web.json_response({"status": "ready"})


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
