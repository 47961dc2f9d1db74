"""The JSON codec of kpk-io's Socket.IO packets (python-socketio's `json=` hook).

Writing uses orjson when it is installed (the `speed` extra: an event broadcast to a room
and every ack are encoded here), and the standard library for what orjson cannot represent
(lone surrogates, integers past 64 bits, keys that are not strings). Both write compact JSON
that reads back to the same values; orjson writes non-ASCII characters as UTF-8 rather than
as escapes.

Reading tries orjson first and takes the standard library's reading whenever orjson refuses
the text, so that what is accepted and what is refused, and with which message, stays as it
was: orjson refuses lone surrogates, numbers out of a double's range, NaN and Infinity, and
nesting past 1,024 levels, each of which the standard library reads
(to be answered by the handler: `invalid_request` for a lone surrogate, say) or refuses as
before; and it would read integers past 64 bits as floats, so a text with 19 digits in a row
goes to the standard library at once. Where orjson reads a text, it reads the same values as
the standard library (the last of duplicate keys wins in both). NaN and Infinity, which are
not JSON, are refused.
"""

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the `speed` extra is not installed
    orjson = None  # type: ignore[assignment]


def loads(text: str | bytes, **options: Any) -> Any:
    if orjson is not None and not _has_long_number(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # the standard library decides, and says why
            pass
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


def _has_long_number(text: str | bytes) -> bool:
    """Whether `text` has 19 ASCII digits in a row (JSON numbers have no others). orjson
    reads an integer past 64 bits as a float, where the standard library keeps it exact, so
    such a text is left to the standard library. (A byte translation and a substring search:
    several times faster than a regular expression.)"""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return _DIGIT_RUN in data.translate(_DIGITS)


_DIGITS = bytes(ord("d") if chr(byte) in "0123456789" else ord(" ") for byte in range(256))
_DIGIT_RUN = b"d" * 19
