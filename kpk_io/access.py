"""Each connection's identity: admitted at connect from its token, consulted on every join
and update, and ended when the token expires.

A connection outlives nothing its token does not allow: when the token expires (its `exp`
plus the leeway, the same instant from which a connect with it is refused), the server
closes that client's transport without a goodbye, as on SIGTERM, so stock clients reconnect
and present a fresh token.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from kpk_io.identity import Identity, TokenVerifier
from kpk_io.protocol import ErrorCode, ProtocolError

log = logging.getLogger(__name__)


class AccessControl:
    def __init__(
        self, verifier: TokenVerifier | None, expire: Callable[[str], Awaitable[None]]
    ) -> None:
        """`expire(sid)` closes a connection's transport (server.drop_transport)."""
        self._verifier = verifier
        self._expire = expire
        self._identities: dict[str, Identity] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._expiring: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self._verifier is not None

    def admit(self, auth: object) -> Identity | None:
        """The identity of a connect `auth` object; None when auth is off. Raises
        identity.Unauthorized."""
        if self._verifier is None:
            return None
        token = auth.get("token") if isinstance(auth, dict) else None
        return self._verifier.verify(token)

    def start(self, sid: str, identity: Identity | None) -> None:
        """`sid` is connected as `identity`: close it when the token expires."""
        if identity is None:
            return
        self._identities[sid] = identity
        if identity.expires is not None:
            delay = max(0.0, identity.expires - time.time())
            loop = asyncio.get_running_loop()
            self._timers[sid] = loop.call_later(delay, self._expired, sid)

    def forget(self, sid: str) -> None:
        """The connection closed."""
        self._identities.pop(sid, None)
        timer = self._timers.pop(sid, None)
        if timer is not None:
            timer.cancel()

    def by(self, sid: str) -> dict[str, str] | None:
        """The `by` of changes this connection commits; None when auth is off."""
        identity = self._identities.get(sid)
        return identity.by if identity is not None else None

    def require_read(self, sid: str, room: str) -> None:
        """Raise ProtocolError unless `sid` may join and read `room`."""
        identity = self._current(sid)
        if identity is not None and not identity.permissions.can_read(room):
            raise ProtocolError(ErrorCode.FORBIDDEN, f"the token does not admit room {room!r}")

    def require_write(self, sid: str, room: str) -> None:
        """Raise ProtocolError unless `sid` may change `room`."""
        identity = self._current(sid)
        if identity is not None and not identity.permissions.can_write(room):
            raise ProtocolError(ErrorCode.FORBIDDEN, f"the token may only read room {room!r}")

    def _current(self, sid: str) -> Identity | None:
        identity = self._identities.get(sid)
        if self._verifier is not None and identity is None:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "the connection is closing")
        expires = identity.expires if identity is not None else None
        if expires is not None and expires <= time.time():
            # The timer is due and the transport about to close: a transient refusal, so
            # clients send the change again after reconnecting with a fresh token.
            raise ProtocolError(ErrorCode.UNAVAILABLE, "the token has expired; reconnecting")
        return identity

    def _expired(self, sid: str) -> None:
        # Called by the event loop, never from inside a room's or a connection's turn; the
        # drop runs in a task of its own because closing a transport runs the disconnect
        # handler, which takes that connection's turn and leaves its rooms' lanes.
        self._timers.pop(sid, None)
        if sid not in self._identities:
            return
        log.info("token of %s expired; closing its transport", sid)
        task = asyncio.create_task(self._drop(sid), name=f"kpk-io expire {sid}")
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def _drop(self, sid: str) -> None:
        try:
            await self._expire(sid)
        except Exception:
            log.exception("closing the transport of %s failed", sid)
