"""Logging: every line carries the socket id and room of the request it belongs to."""

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

_sid: ContextVar[str | None] = ContextVar("kpk_io_sid", default=None)
_room: ContextVar[str | None] = ContextVar("kpk_io_room", default=None)


class bind_request:  # noqa: N801 - used as a function: `with bind_request(sid, room):`
    """Tag the log lines written inside the block with `sid` and `room`. (A class rather
    than a contextmanager generator: every request enters one.)"""

    __slots__ = ("_room", "_room_token", "_sid", "_sid_token")

    def __init__(self, sid: str | None, room: str | None) -> None:
        self._sid, self._room = sid, room

    def __enter__(self) -> None:
        self._sid_token, self._room_token = _sid.set(self._sid), _room.set(self._room)

    def __exit__(self, *exc: object) -> None:
        _sid.reset(self._sid_token)
        _room.reset(self._room_token)


class _RequestFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.sid = _sid.get()
        record.room = _room.get()
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = [f"{k}={getattr(record, k)!r}" for k in ("sid", "room") if getattr(record, k, None)]
        return f"{line} [{' '.join(tags)}]" if tags else line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "sid": getattr(record, "sid", None),
            "room": getattr(record, "room", None),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, json_lines: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestFilter())
    if json_lines:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
