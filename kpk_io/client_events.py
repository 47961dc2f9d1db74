"""The custom events a client listens to: those an outside emitter (python-socketio's
RedisManager, docs/deployment.md) sends to a room's members, beside the protocol's own."""

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

import socketio

from kpk_io.protocol import Event

# Events the client itself handles: no listener may take them over.
_OWN_EVENTS = frozenset(
    {"connect", "disconnect", "connect_error", "__disconnect_final", *(e.value for e in Event)}
)


class CustomEvents:
    def __init__(self, sio: socketio.AsyncClient) -> None:
        self._sio = sio
        self._handlers: dict[str, list[Callable[..., Any]]] = {}

    def on(self, event: str, handler: Callable[[Any], Any]) -> Callable[[], None]:
        """Call `handler(data)` (a function or a coroutine function) for each `event`;
        several handlers may listen to one event. Returns a function that removes this
        one."""
        if event in _OWN_EVENTS:
            raise ValueError(f"{event!r} is the client's own event")
        if event not in self._handlers:
            self._handlers[event] = []
            self._sio.on(event, partial(self._dispatch, event))
        handlers = self._handlers[event]
        handlers.append(handler)

        def remove() -> None:
            if handler in handlers:
                handlers.remove(handler)

        return remove

    async def _dispatch(self, event: str, *args: Any) -> None:
        for handler in list(self._handlers.get(event, ())):
            result = handler(*args)
            if inspect.isawaitable(result):
                await result
