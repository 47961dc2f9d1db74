"""Changes from outside a Socket.IO connection (the HTTP API, publishers): checked by the
same parsers as the events, committed on a store, every refusal a PublishError."""

import contextlib
from collections.abc import Iterator, Mapping

from kpk_io.change import JSON, Snapshot
from kpk_io.limits import DEFAULT_LIMITS, Limits
from kpk_io.protocol import (
    ErrorCode,
    ProtocolError,
    SignalRequest,
    dedupe_key,
    parse_room_request,
    parse_signal,
)
from kpk_io.rate import TokenBucket
from kpk_io.store.base import Conflict, StateStore, StoreUnavailable, TooLarge
from kpk_io.text_commit import commit_change as commit_text_aware
from kpk_io.update_request import UpdateRequest, parse_update

# The one sender of every change from outside (HTTP API, publishers): trusted code, whose
# change ids share one dedupe namespace.
_SENDER = "kpk-io:publish"


class PublishError(Exception):
    """A refused or failed publish. `code` is a protocol error code, `rev` the room's
    current rev when the code is `conflict`, and `retry_after` the milliseconds to wait
    when it is `rate_limited`. A refusal changed nothing; `unavailable` from `update` or
    `delete` is an unknown outcome (Redis may have committed the change before its reply
    was lost): call again with the same `change_id` to be sure it is applied once."""

    def __init__(
        self, code: ErrorCode, message: str, rev: int | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.rev = rev
        self.retry_after = retry_after


def parse_change(data: object, limits: Limits) -> UpdateRequest:
    """Check an update given as the `update` event's body (room included)."""
    with _refusals():
        return parse_update(data, limits)


def parse_signal_request(room: str, data: JSON, limits: Limits) -> SignalRequest:
    """Check a signal as the `signal` event's body."""
    with _refusals():
        return parse_signal({"room": room, "data": data}, limits)


def clear_request(room: str) -> UpdateRequest:
    """The update that empties a room: a replace with no fields, so revs stay monotonic and
    members apply it like any other update."""
    return parse_change({"room": room, "set": {}, "replace": True}, DEFAULT_LIMITS)


def take(bucket: TokenBucket) -> None:
    """Take a token from `bucket`, or refuse with `rate_limited`."""
    wait = bucket.take()
    if wait:
        message = f"too many requests; retry in {wait} ms"
        raise PublishError(ErrorCode.RATE_LIMITED, message, retry_after=wait)


async def read_room(store: StateStore, room: str) -> Snapshot:
    with _refusals():
        checked = parse_room_request({"room": room})
        return await store.snapshot(checked)


async def commit_change(
    store: StateStore, request: UpdateRequest, by: Mapping[str, str] | None = None
) -> int:
    """Commit a checked update and return its rev; `by` names who made it."""
    with _refusals():
        result = await commit_text_aware(
            store,
            request.room,
            request.change,
            base_rev=request.base_rev,
            change_id=request.id,
            dedupe_key=dedupe_key(_SENDER, request.id),
            by=by,
        )
    if isinstance(result, Conflict):
        message = f"the room is at rev {result.rev}"
        raise PublishError(ErrorCode.CONFLICT, message, rev=result.rev)
    if isinstance(result, TooLarge):
        raise PublishError(ErrorCode.TOO_LARGE, result.message)
    return result.rev


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except ProtocolError as exc:
        raise PublishError(exc.code, exc.message) from None
    except StoreUnavailable as exc:
        message = f"the store did not answer; the change may or may not be committed ({exc})"
        raise PublishError(ErrorCode.UNAVAILABLE, message) from exc
