"""Bounds on what one client may send and store: sizes, counts, nesting and request rates.

Each bound is a setting (config.py). The parsers, the stores, the socket handlers, the HTTP
API and the publishers all take them from one Limits and refuse with the same codes.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # config imports the stores, which import this module
    from kpk_io.config import Settings


@dataclass(frozen=True)
class Rate:
    """A token bucket's shape: `per_second` refill (0 = unlimited) up to `burst` tokens."""

    per_second: float
    burst: int

    @property
    def unlimited(self) -> bool:
        return self.per_second <= 0


@dataclass(frozen=True)
class Limits:
    update_bytes: int = 256 * 1024  # the fields one update sets, encoded
    state_bytes: int = 1024 * 1024  # a room's whole state, encoded
    fields: int = 1000  # fields per room
    field_name: int = 256  # characters of a field name
    depth: int = 32  # nesting of a field's value; the value itself is level 1
    updates: Rate = Rate(50.0, 100)  # per connection
    requests: Rate = Rate(20.0, 200)  # joins, leaves, syncs and other events per connection
    signals: Rate = Rate(30.0, 60)  # per connection

    @classmethod
    def from_settings(cls, settings: "Settings") -> "Limits":
        return cls(
            update_bytes=settings.max_update_bytes,
            state_bytes=settings.max_state_bytes,
            fields=settings.max_fields,
            field_name=settings.max_field_name,
            depth=settings.max_depth,
            updates=Rate(settings.rate_limit, settings.rate_burst),
            requests=Rate(settings.join_rate, settings.join_burst),
            signals=Rate(settings.signal_rate, settings.signal_burst),
        )


DEFAULT_LIMITS = Limits()


def field_bytes(name: str, encoded_value: str) -> int:
    """What one field counts towards update_bytes and state_bytes: its name and its value's
    compact JSON, in UTF-8, as the store keeps them."""
    return len(name.encode()) + len(encoded_value.encode())
