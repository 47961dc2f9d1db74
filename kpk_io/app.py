"""create_app(settings, store=...): wires store, hub, Socket.IO server and HTTP routes into
one app; the hub hears the store's feed because this module connects them."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from kpk_io.admin import add_admin_view
from kpk_io.api import add_api_routes
from kpk_io.config import MIN_JWT_SECRET_BYTES, Settings, redact_url, weak_jwt_secret
from kpk_io.engine import drop_transport, eio_sids
from kpk_io.handlers import Handlers
from kpk_io.hub import Hub
from kpk_io.identity import TokenVerifier
from kpk_io.limits import Limits
from kpk_io.metrics import Metrics
from kpk_io.pages import add_page_routes
from kpk_io.presence import PresenceStore
from kpk_io.presence_memory import MemoryPresence
from kpk_io.presence_redis import RedisPresence
from kpk_io.roster import Roster
from kpk_io.server import build_server
from kpk_io.store.base import SECONDS_PER_DAY, StateStore, StoreUnavailable
from kpk_io.store.memory import MemoryStateStore
from kpk_io.store.redis import RedisStateStore

log = logging.getLogger(__name__)

STORE = web.AppKey("store", StateStore)
METRICS = web.AppKey("metrics", Metrics)
SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", Hub)
HANDLERS = web.AppKey("handlers", Handlers)
ROSTER = web.AppKey("roster", Roster)
STORE_CHECK_SECONDS = 5.0


def create_store(settings: Settings) -> StateStore:
    if settings.redis_url is None:
        return MemoryStateStore(settings.history, history_bytes=settings.history_bytes,
                                room_ttl=settings.room_ttl * SECONDS_PER_DAY,
                                limits=Limits.from_settings(settings))
    return RedisStateStore(settings.redis_url, prefix=settings.key_prefix,
                           history=settings.history, history_bytes=settings.history_bytes,
                           room_ttl=settings.room_ttl * SECONDS_PER_DAY,
                           limits=Limits.from_settings(settings))


def create_verifier(settings: Settings) -> TokenVerifier | None:
    verifier = TokenVerifier.from_settings(settings)
    if verifier is None:
        log.warning(
            "auth is off: anyone who can reach this port may read and change every room; "
            "set KPK_IO_JWT_SECRET or KPK_IO_JWT_PUBLIC_KEY (see docs/security.md)"
        )
    elif weak_jwt_secret(settings.jwt_secret):
        log.warning(
            "KPK_IO_JWT_SECRET is shorter than %d bytes: RFC 7518 recommends a 256-bit HS256 "
            "key (make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')",
            MIN_JWT_SECRET_BYTES,
        )
    if verifier is not None:
        log.info("auth is on: connections need a JWT signed with %s",
                 ", ".join(verifier.algorithms))
    return verifier


def create_presence(settings: Settings) -> PresenceStore:
    if settings.redis_url is None:
        return MemoryPresence(settings.presence_ttl)
    return RedisPresence(settings.redis_url, prefix=settings.key_prefix,
                         ttl=settings.presence_ttl)


def create_app(
    settings: Settings, *, store: StateStore | None = None,
    presence: PresenceStore | None = None,
) -> web.Application:
    """The whole node, on `store` and `presence` (by default the ones `settings` name:
    Redis or memory).
    Raises ConfigError for a JWT public key that cannot be used."""
    # The HTTP API's bodies are bounded like Socket.IO messages (413 past that).
    app = web.Application(client_max_size=settings.max_payload)
    verifier = create_verifier(settings)
    store = create_store(settings) if store is None else store
    metrics = Metrics()
    presence = create_presence(settings) if presence is None else presence
    sio, hub, handlers, roster = build_server(settings, store, presence, metrics, verifier)
    store.set_listener(hub)  # the store's feed of commits goes to this node's hub
    sio.attach(app)
    add_admin_view(app, sio, settings)
    app[STORE] = store
    app[METRICS] = metrics
    app[SETTINGS] = settings
    app[HUB] = hub
    app[HANDLERS] = handlers
    app[ROSTER] = roster
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    add_api_routes(app, store, settings, metrics, verifier, presence=presence)
    add_page_routes(app)

    async def drain(app: web.Application) -> None:
        await _drain(handlers, settings.shutdown_timeout)
        for eio_sid in eio_sids(sio):
            await drop_transport(sio, eio_sid)
        await sio.shutdown()

    async def close(app: web.Application) -> None:
        await _close(hub, store)

    app.cleanup_ctx.append(_store_checks)
    app.cleanup_ctx.append(_presence)
    app.on_shutdown.append(drain)
    app.on_cleanup.append(close)
    return app


async def _store_checks(app: web.Application) -> AsyncIterator[None]:
    """Keep kpk_io_store_up current while the app runs."""
    task = asyncio.create_task(_check_store_forever(app[STORE], app[METRICS]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _presence(app: web.Application) -> AsyncIterator[None]:
    """Beat and prune presence while the app runs; leave every room on the way out."""
    roster = app[ROSTER]
    await roster.start()
    yield
    await roster.close()


async def _check_store_forever(store: StateStore, metrics: Metrics) -> None:
    while True:
        await _check_store(store, metrics)
        await asyncio.sleep(STORE_CHECK_SECONDS)


async def _check_store(store: StateStore, metrics: Metrics) -> str | None:
    """Ping the store and record the answer in kpk_io_store_up; the reason it is down, or
    None while it is up."""
    try:
        await asyncio.wait_for(store.ping(), 2.0)
    except (StoreUnavailable, TimeoutError) as exc:
        metrics.store_up.set(0)
        return str(exc) or "no answer in 2 s"
    metrics.store_up.set(1)
    return None


async def _drain(handlers: Handlers, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await handlers.drain()
    except TimeoutError:
        log.warning("shut down before every running request was answered")


async def report_store(app: web.Application) -> None:
    """Say which store this node runs on. A Redis that is down is no reason not to start (it
    may come up after us), but the node is not ready, and /readyz answers 503, until it is."""
    url = app[SETTINGS].redis_url
    if url is None:
        log.warning(
            "no Redis configured: running on the embedded in-memory store; "
            "state lives in this process only and is lost when it exits"
        )
        return
    reason = await _check_store(app[STORE], app[METRICS])
    if reason is not None:
        log.warning(
            "Redis at %s cannot be reached (%s): not ready (GET /readyz answers 503) "
            "until it can", redact_url(url), reason,
        )


async def _close(hub: Hub, store: StateStore) -> None:
    await hub.close()
    await store.close()


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    reason = await _check_store(request.app[STORE], request.app[METRICS])
    if reason is not None:
        return web.json_response({"status": "unavailable", "reason": reason}, status=503)
    return web.json_response({"status": "ready"})


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
