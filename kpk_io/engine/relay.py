"""Relaying between nodes (`RelayManager`).

python-socketio's AsyncRedisManager hands every message on its channel to `_handle_emit`,
which encodes the packet before it looks for recipients; a node with no member in the room
skips that (`manager.rooms`, the namespace -> room -> members map python-socketio keeps for
each node's own sockets), so such a node does no work per signal beyond the manager's own
decode.

Relies on: `AsyncRedisManager._handle_emit(message)`, `_publish(data)`, `_redis_connect()`,
and its `connected`, `redis`, `channel`, `json`, `host_id` and `rooms` attributes; the
message `AsyncPubSubManager.emit` publishes.
"""

import logging
from typing import Any

import socketio

from kpk_io.engine.packets import NAMESPACE

log = logging.getLogger(__name__)


class RelayManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """AsyncRedisManager that skips messages for rooms with no member on this node, and
    publishes to the other nodes without delivering locally (`relay`)."""

    connected: bool  # python-socketio's: whether its Redis client is made

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outage = False  # the last publish failed: said once, not once per event

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        room = message.get("room")
        namespace = message.get("namespace") or NAMESPACE
        if isinstance(room, str) and not self.rooms.get(namespace, {}).get(room):
            return
        await super()._handle_emit(message)

    async def relay(self, event: str, data: object, room: str, skip_sid: str | None) -> bool:
        """Publish `event` to the other nodes only (this node's members got it through the
        Outbox); the message is the one AsyncPubSubManager.emit publishes. False when
        Redis did not take it."""
        message = {"method": "emit", "event": event, "data": [data], "binary": False,
                   "namespace": NAMESPACE, "room": room, "skip_sid": skip_sid,
                   "callback": None, "host_id": self.host_id}
        return await self._publish(message)

    async def _publish(self, data: dict[str, Any]) -> bool:
        # python-socketio's own logs an ERROR line for every event while Redis is away.
        # Retried once for a pooled connection that died (a restarted Redis), but not during
        # a known outage: each try waits out the socket timeout.
        failure: Exception | None = None
        for _ in range(1 if self._outage else 2):
            try:
                if not self.connected:
                    self._redis_connect()
                await self.redis.publish(self.channel, self.json.dumps(data))
            except Exception as exc:
                self.connected = False
                failure = exc
                continue
            if self._outage:
                log.warning("publishing presence and signals to Redis works again")
                self._outage = False
            return True
        if not self._outage:
            log.warning("cannot publish presence and signals to Redis (%s); other nodes miss "
                        "them until it answers (counted in kpk_io_relay_dropped_total)",
                        failure)
            self._outage = True
        return False
