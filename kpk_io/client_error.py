"""The Python client's one error type, which refusals are worth retrying and how long to
wait before the next try (the twin of web/kpk-io/error.js; tests/client_vectors.json holds
both to one list of retryable codes)."""

import random
from collections.abc import Mapping

from kpk_io.change import JSON

_RETRY_DELAY = 0.5  # the first retry of a refused request; each next one waits twice as long
_RETRY_DELAY_MAX = 5.0

# Answers after which the same request may still succeed: the outcome is unknown
# (`unavailable`, `internal`, no answer), or the server asks to wait or to join first. After
# any other code an update is dropped and reported.
RETRYABLE = frozenset(
    {"unavailable", "internal", "disconnected", "timeout", "not_joined", "rate_limited"}
)


def is_retryable(code: str) -> bool:
    return code in RETRYABLE


class KpkError(Exception):
    """A request the server refused; `code` is one of the protocol's error codes, or
    `disconnected` / `timeout` when no answer came."""

    def __init__(self, code: str, message: str, ack: Mapping[str, JSON] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ack = dict(ack or {})


class Backoff:
    """Delays between retries: doubling from `first` up to `cap`, each one drawn at random
    from its upper half, so clients refused together do not all come back together."""

    def __init__(self, first: float = _RETRY_DELAY, cap: float = _RETRY_DELAY_MAX) -> None:
        self._first = first
        self._cap = cap
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._cap, self._first * 2 ** min(self._attempt, 32))
        self._attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0


def retry_delay(exc: KpkError, delay: float) -> float:
    """Seconds to wait before trying again: `delay`, or what a rate_limited answer asks."""
    retry_after = exc.ack.get("retry_after")
    if exc.code == "rate_limited" and isinstance(retry_after, int | float):
        return max(0.0, retry_after / 1000)
    return delay
