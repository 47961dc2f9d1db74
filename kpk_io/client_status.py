"""A client's connection status, and the listeners told when it changes (the same four
statuses as the browser client's)."""

import logging
from collections.abc import Callable
from typing import Literal

log = logging.getLogger("kpk_io.client")  # the client's log lines keep one logger name

Status = Literal["connecting", "connected", "offline", "error"]
StatusListener = Callable[[Status, Exception | None], None]


class ConnectionStatus:
    def __init__(self) -> None:
        self.value: Status = "offline"
        self._listeners: list[StatusListener] = []

    def listen(self, listener: StatusListener) -> Callable[[], None]:
        """Call `listener(status, error)` when the status changes; returns a function that
        removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def set(self, status: Status, error: Exception | None = None) -> None:
        if status == self.value:
            return
        self.value = status
        for listener in list(self._listeners):
            try:
                listener(status, error)
            except Exception:  # one broken listener must not stop the client
                log.exception("a status listener failed")
