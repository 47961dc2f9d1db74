"""The Socket.IO Admin UI: python-socketio's instrument() on the server, and the UI's files
(web/admin, vendored from @socket.io/admin-ui with every asset local) at /admin/.

Off unless both KPK_IO_ADMIN_USER and KPK_IO_ADMIN_PASSWORD are set. Always read-only: the
UI's write actions (emit, join, leave, disconnect) would let an operator put sockets in rooms
past the permission checks. Always production mode: development mode reports every event
with its data to the admins and wraps the broadcast path. Production mode sends the UI no
list of sockets, so this module sends one (`all_sockets`: each connection, its transport,
address and kpk-io rooms, no headers, since those carry cookies and tokens) every couple of
seconds while an admin is connected.
"""

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from kpk_io.address import TrustedProxies
from kpk_io.config import Settings
from kpk_io.pages import WEB_DIR, file_response
from kpk_io.rooms import room_of_sio_room

log = logging.getLogger(__name__)

ADMIN_NAMESPACE = "/admin"
ADMIN_DIR = WEB_DIR / "admin"
SNAPSHOT_SECONDS = 2.0


def add_admin_view(app: web.Application, sio: socketio.AsyncServer, settings: Settings) -> bool:
    """Turn the admin view on when its credentials are configured; True if it is on."""
    user, password = settings.admin_user, settings.admin_password
    if user is None or password is None:
        return False
    sio.instrument(auth=_credentials(user, password), mode="production", read_only=True,
                   namespace=ADMIN_NAMESPACE)
    app.router.add_get("/admin", _to_admin_page)
    app.router.add_get("/admin/{path:.*}", _admin_file)
    snapshots = _SocketSnapshots(sio, TrustedProxies(settings.trusted_proxies))
    app.cleanup_ctx.append(snapshots.run)
    log.info("admin view on at /admin/ (read-only), for user %r", user)
    return True


def _credentials(user: str, password: str) -> Callable[[object], bool]:
    def check(auth: object) -> bool:
        if not isinstance(auth, dict):
            return False
        given_user, given_password = str(auth.get("username")), str(auth.get("password"))
        # Both compared, in time independent of where they differ.
        same_user = hmac.compare_digest(given_user.encode(), user.encode())
        same_password = hmac.compare_digest(given_password.encode(), password.encode())
        return same_user and same_password

    return check


async def _to_admin_page(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/admin/")


async def _admin_file(request: web.Request) -> web.StreamResponse:
    relative = request.match_info["path"] or "index.html"
    path = (ADMIN_DIR / relative).resolve()
    hidden = any(part.startswith(".") for part in Path(relative).parts)
    if hidden or ADMIN_DIR.resolve() not in path.parents:
        raise web.HTTPNotFound()
    return file_response(path, {"Cache-Control": "no-cache"})


class _SocketSnapshots:
    """Sends connected admins the list of sockets and their rooms, every SNAPSHOT_SECONDS."""

    def __init__(self, sio: socketio.AsyncServer, proxies: TrustedProxies) -> None:
        self._sio = sio
        self._proxies = proxies

    async def run(self, app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(self._every(SNAPSHOT_SECONDS, self._send))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _every(self, seconds: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await step()
            except Exception:  # the admin view must never take the server down
                log.exception("sending the admin view its socket list failed")

    async def _send(self) -> None:
        admins = self._sio.manager.rooms.get(ADMIN_NAMESPACE, {}).get(None, {})
        if admins:
            sockets = [self._describe(sid, eio_sid)
                       for sid, eio_sid in list(self._sio.manager.get_participants("/", None))]
            # This node's admins only: the list is this node's sockets, and through
            # AsyncRedisManager each admin would get every node's list in turn.
            await self._sio.emit("all_sockets", sockets, namespace=ADMIN_NAMESPACE,
                                 ignore_queue=True)

    def _describe(self, sid: str, eio_sid: str) -> dict[str, Any]:
        """A socket as the Admin UI's `all_sockets` event describes one."""
        socket = self._sio.eio.sockets.get(eio_sid)
        environ = self._sio.environ.get(eio_sid, {})
        request = environ.get("aiohttp.request")
        peer = request.remote if request is not None else None
        rooms = [room_of_sio_room(name) for name in self._sio.manager.get_rooms(sid, "/")]
        return {
            "id": sid,
            "clientId": eio_sid,
            "transport": "websocket" if socket is not None and socket.upgraded else "polling",
            "nsp": "/",
            "data": {},
            "handshake": {
                "address": self._proxies.client_address(
                    peer, environ.get("HTTP_X_FORWARDED_FOR")
                ),
                "headers": {},
                "query": {},
                "secure": environ.get("wsgi.url_scheme") == "https",
                "url": environ.get("PATH_INFO", ""),
                "issued": 0,  # not tracked in production mode
                "time": "",
            },
            "rooms": [room for room in rooms if room is not None],
        }
