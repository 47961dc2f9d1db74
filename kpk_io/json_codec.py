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
import re
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the `speed` extra is not installed
    orjson = None  # type: ignore[assignment]


def loads(text: str | bytes, **options: Any) -> Any:
    long_number = _LONG_NUMBER if isinstance(text, str) else _LONG_NUMBER_BYTES
    if orjson is not None and not long_number.search(text):  # type: ignore[arg-type]
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


# orjson reads an integer past 64 bits as a float, where the standard library keeps it exact:
# a text with a run of 19 digits or more is left to the standard library.
_LONG_NUMBER = re.compile(r"\d{19}")
_LONG_NUMBER_BYTES = re.compile(rb"\d{19}")
