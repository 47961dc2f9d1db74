"""Logging: every line carries the socket id and room of the request it belongs to."""

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

# (sid, room) of the request being handled: one variable, so that binding a request is one
# set and one reset (every request binds one).
_request: ContextVar[tuple[str | None, str | None]] = ContextVar(
    "kpk_io_request", default=(None, None))


class bind_request:  # noqa: N801 - used as a function: `with bind_request(sid, room):`
    """Tag the log lines written inside the block with `sid` and `room`. (A class rather
    than a contextmanager generator: every request enters one.)"""

    __slots__ = ("_bound", "_token")

    def __init__(self, sid: str | None, room: str | None) -> None:
        self._bound = (sid, room)

    def __enter__(self) -> None:
        self._token = _request.set(self._bound)

    def __exit__(self, *exc: object) -> None:
        _request.reset(self._token)


class _RequestFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.sid, record.room = _request.get()
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
