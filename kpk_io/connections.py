"""The open connections of this node: who may connect, and each one's sender, address, rate
buckets and turn.

A refused connect answers a connect_error whose data is {error, message}: python-socketio
gives the client no answer at all for any other exception, and keeps the half-made
connection.
"""

import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import socketio

from kpk_io.access import AccessControl
from kpk_io.address import ConnectionCounts, TrustedProxies
from kpk_io.config import Settings
from kpk_io.hub import Hub
from kpk_io.identity import Identity, Unauthorized
from kpk_io.limits import Limits
from kpk_io.metrics import Metrics
from kpk_io.protocol import ErrorCode, ProtocolError, client_secret
from kpk_io.rate import TokenBucket, connection_bucket
from kpk_io.roster import Roster
from kpk_io.turn import Turn

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Connection:
    # Whose change ids these are: the client's secret from the connect auth, which survives
    # reconnects, else the socket id. Ids are only unique per sender.
    sender: str
    address: str
    updates: TokenBucket
    requests: TokenBucket  # joins, leaves, syncs, presence and any other event
    signals: TokenBucket
    # Taken first thing by each request: the order its requests run in.
    turn: Turn = field(default_factory=Turn)


class Connections:
    def __init__(
        self, hub: Hub, metrics: Metrics, settings: Settings, access: AccessControl,
        roster: Roster,
    ) -> None:
        self._hub = hub
        self._metrics = metrics
        self._access = access
        self._roster = roster
        self._limits = Limits.from_settings(settings)
        self._proxies = TrustedProxies(settings.trusted_proxies)
        self._per_address = ConnectionCounts(settings.max_connections_per_address)
        self._open: dict[str, Connection] = {}

    def __len__(self) -> int:
        return len(self._open)

    def get(self, sid: str) -> Connection | None:
        return self._open.get(sid)

    def sender(self, sid: str) -> str:
        connection = self._open.get(sid)
        return connection.sender if connection is not None else sid

    async def connect(self, sid: str, environ: dict[str, Any], auth: object) -> None:
        """Admit a connection, or refuse it with a connect_error (see the module's doc)."""
        try:
            identity = self._authenticate(auth)
            connection = self._admit(sid, environ, auth)
        except ProtocolError as exc:
            log.info("connection refused: %s %s", exc.code, exc.message)
            raise socketio.exceptions.ConnectionRefusedError(exc.message, exc.to_data()) from None
        except Exception:
            log.exception("connect failed")
            data = ProtocolError(ErrorCode.INTERNAL, "internal error").to_data()
            raise socketio.exceptions.ConnectionRefusedError("internal error", data) from None
        self._open[sid] = connection
        self._access.start(sid, identity)
        self._metrics.connections.inc()

    def _authenticate(self, auth: object) -> Identity | None:
        """The identity of the connect `auth`'s token; None when auth is off."""
        try:
            return self._access.admit(auth)
        except Unauthorized as exc:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, exc.message) from None

    def _admit(self, sid: str, environ: dict[str, Any], auth: object) -> Connection:
        secret = client_secret(auth)
        request = environ.get("aiohttp.request")
        # engineio's aiohttp driver sets REMOTE_ADDR to 127.0.0.1 for everyone.
        peer = getattr(request, "remote", None)
        # Interned: the connections from one address share one string.
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        address = sys.intern(self._proxies.client_address(peer, forwarded))
        if not self._per_address.admit(address):
            message = f"too many connections from {address}; close one first"
            raise ProtocolError(ErrorCode.TOO_MANY_CONNECTIONS, message)
        return Connection(
            secret or sid,
            address,
            connection_bucket(self._limits.updates),
            connection_bucket(self._limits.requests),
            connection_bucket(self._limits.signals),
        )

    async def disconnect(self, sid: str, reason: object = None) -> None:
        # Waits for nothing (not even this connection's running requests): python-socketio
        # runs it inline wherever the close was noticed, engineio's service task included.
        connection = self._open.pop(sid, None)
        if connection is None:
            return
        self._metrics.connections.dec()
        self._per_address.release(connection.address)
        self._hub.forget(sid)
        self._roster.forget(sid)  # others see it leave now; never awaits
        self._access.forget(sid)
