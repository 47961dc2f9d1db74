"""Incoming packets kpk-io refuses (`StrictPacket`, `RefusedPacket`).

Relies on: `socketio.packet.Packet.decode` and the constructor's `encoded_packet=` (the
`serializer=` python-socketio decodes every incoming message with), and the header layout
python-socketio reads (type, attachments, namespace, ack id).

kpk-io's protocol uses no binary packets, so a packet announcing attachments, a
BINARY_EVENT or BINARY_ACK, or a binary frame is refused before python-socketio keeps any
state for it (it would otherwise keep every later frame of the connection as an attachment),
and the connection is closed. Any other packet kpk-io cannot read (empty, not JSON, NaN or
Infinity, nested past the JSON decoder's recursion limit, an event with no name or a name
that is not a string, a packet type clients do not send) keeps the connection: python-socketio
would drop it without an answer (or, for an event without a name, fail in a task), so it is
refused here and answered with an `invalid_request` ack whenever its ack id can be read.
"""

import re
from typing import Any

from socketio import packet as sio_packet

from kpk_io import json_codec
from kpk_io.protocol import ErrorCode

NAMESPACE = "/"
MAX_ATTACHMENTS = 0  # per packet: the protocol has no binary data
# The header of a Socket.IO packet: type, attachments, namespace, ack id (as python-socketio
# reads them), for reading the ack id of a packet whose body cannot be decoded.
_HEADER = re.compile(r"[0-9](?:[0-9]+-)?(?:(/[^,]*),)?([0-9]{1,16})")
# Packet types a client sends; BINARY_* are refused (with the connection) before this.
_FROM_CLIENTS = frozenset({sio_packet.CONNECT, sio_packet.DISCONNECT, sio_packet.EVENT,
                           sio_packet.ACK})


class RefusedPacket(ValueError):
    """An incoming packet kpk-io does not accept.

    `close`: the connection must be closed (its later frames cannot be trusted to line up).
    `ack_id`: the packet's ack id when it could be read, so that a refusal that keeps the
    connection can still be answered.
    """

    def __init__(
        self, reason: str, *, close: bool, ack_id: int | None = None,
        namespace: str | None = None, code: ErrorCode = ErrorCode.INVALID_REQUEST,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.close = close
        self.ack_id = ack_id
        self.namespace = namespace or NAMESPACE


class StrictPacket(sio_packet.Packet):  # type: ignore[misc]
    """python-socketio's packet, decoding only what kpk-io's protocol can carry."""

    json = json_codec  # orjson when installed; refuses NaN and Infinity, which are not JSON
    # Nothing kpk-io sends is binary (its protocol has no attachments): python-socketio would
    # otherwise walk every packet's whole data looking for bytes before encoding it. A bytes
    # value sent by mistake fails to encode as JSON, loudly, rather than going out binary.
    uses_binary_events = False

    def __init__(self, *args: Any, encoded_packet: str | bytes | None = None, **kw: Any) -> None:
        # python-socketio decodes only a non-empty packet, and takes an empty one for an
        # event with no data, which then fails in its handler: refuse it here instead.
        if encoded_packet is not None and not encoded_packet:
            raise RefusedPacket("an empty packet", close=False)
        super().__init__(*args, encoded_packet=encoded_packet, **kw)

    def decode(self, encoded_packet: str | bytes) -> int:
        if not isinstance(encoded_packet, str):
            raise RefusedPacket("binary frames are not part of the protocol", close=True)
        if encoded_packet[:1] in (str(sio_packet.BINARY_EVENT), str(sio_packet.BINARY_ACK)):
            raise RefusedPacket("binary packets are not part of the protocol", close=True)
        try:
            attachments: int = super().decode(encoded_packet)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            header = _HEADER.match(encoded_packet)
            raise RefusedPacket(
                f"not a packet kpk-io can read: {str(exc)[:200]}", close=False,
                ack_id=int(header[2]) if header else None, namespace=header and header[1],
            ) from None
        if attachments > MAX_ATTACHMENTS:
            raise RefusedPacket(f"a packet announced {attachments} attachments", close=True)
        problem = self._problem()
        if problem is not None:
            raise RefusedPacket(problem, close=False, ack_id=self.id, namespace=self.namespace)
        return attachments

    def _problem(self) -> str | None:
        if self.packet_type not in _FROM_CLIENTS:
            return f"packet type {self.packet_type} is not one a client sends"
        if self.packet_type == sio_packet.EVENT and not (
            isinstance(self.data, list) and self.data and isinstance(self.data[0], str)
        ):
            return "an event is a list whose first item is the event's name, a string"
        return None
