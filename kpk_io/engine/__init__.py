"""The one package of kpk-io that reaches past the public API of python-socketio,
python-engineio and aiohttp. Everything else uses their public API only, through the names
exported here.

Tested with python-socketio 5.18 and python-engineio 4.15 (pinned below the next minor
release in pyproject.toml); tests/test_engine.py fails loudly when an upgrade changes
anything this package relies on. Each module states its part of the contract:

- kpk_io/engine/packets.py: incoming packets refused (`StrictPacket`, `RefusedPacket`),
  through python-socketio's `Packet.decode`;
- kpk_io/engine/server.py: the server (`Server`): `AsyncServer._handle_eio_message`,
  `_handle_event` and `_send_packet`, engineio's `sockets` and `_async` maps, and
  `AsyncSocket.close` and its `queue`, for closing and dropping connections;
- kpk_io/engine/frames.py: engineio's aiohttp WebSocket driver (`WebSocketDriver`) and
  aiohttp's WebSocket writer, for compression and the Outbox's direct writes (corked: the
  frames of one loop turn go to each transport in one write);
- kpk_io/engine/sockets.py: lighter Engine.IO sockets (`Engine`, `LeanSocket`,
  `SendQueue`): a WebSocket read in aiohttp's handler task and a writer that awaits its
  queue, with no task or timer per message, and every socket's PINGs from one clock;
- kpk_io/engine/outbox.py: delivery that never awaits a send (`Outbox`), onto each
  `AsyncSocket`'s own send queue;
- kpk_io/engine/relay.py: relaying between nodes (`RelayManager`), through
  `AsyncRedisManager._handle_emit` and `_publish`.

A WebSocket frame that is not an Engine.IO packet at all (empty, or not starting with a
packet type) ends that connection at once (kpk_io/engine/sockets.py); on polling,
python-engineio answers such a body with 400.
"""

from kpk_io.engine.frames import WebSocketDriver
from kpk_io.engine.outbox import Outbox
from kpk_io.engine.packets import MAX_ATTACHMENTS, NAMESPACE, RefusedPacket, StrictPacket
from kpk_io.engine.relay import RelayManager
from kpk_io.engine.server import (
    CATCH_ALL,
    Server,
    connect_error,
    drop_transport,
    eio_sids,
    slow_consumers,
)

__all__ = [
    "CATCH_ALL",
    "MAX_ATTACHMENTS",
    "NAMESPACE",
    "Outbox",
    "RefusedPacket",
    "RelayManager",
    "Server",
    "StrictPacket",
    "WebSocketDriver",
    "connect_error",
    "drop_transport",
    "eio_sids",
    "slow_consumers",
]
