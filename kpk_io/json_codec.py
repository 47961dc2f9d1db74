"""The JSON codec of kpk-io's Socket.IO packets (python-socketio's `json=` hook).

Writing uses orjson when it is installed (the `speed` extra: an event broadcast to a room
and every ack are encoded here), and the standard library for what orjson cannot represent
(lone surrogates, integers past 64 bits, keys that are not strings). Both write compact JSON
that reads back to the same values; orjson writes non-ASCII characters as UTF-8 rather than
as escapes.

Reading always uses the standard library, so that what is accepted and what is refused, and
with which message, stays as it was: orjson would refuse lone surrogates while decoding,
before any handler could answer `invalid_request`, and would read integers past 64 bits as
floats. NaN and Infinity, which are not JSON, are refused.
"""

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the `speed` extra is not installed
    orjson = None  # type: ignore[assignment]


def loads(text: str | bytes, **options: Any) -> Any:
    return json.loads(text, parse_constant=_not_json)


def dumps(value: Any, **options: Any) -> str:
    """Compact JSON text (python-socketio asks for `separators=(",", ":")`)."""
    if orjson is not None and not options.get("indent"):
        try:
            return orjson.dumps(value).decode()
        except TypeError:  # not representable by orjson: the standard library says how
            pass
    return json.dumps(value, **{"separators": (",", ":"), **options})


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")
