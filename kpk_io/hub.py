"""One node's rooms: who is a member here, and delivery of each room's committed changes to
them exactly once and in rev order.

Each room with local members has a lane: a queue of operations worked by one task (while
there are any: an idle lane holds no task), which handles joins, leaves and the room's feed
messages in turn; the next change of an idle lane is delivered as it comes. The lane keeps a
cursor, the last rev its members were sent. A joiner enters the Socket.IO room exactly when
its snapshot's rev equals the cursor, so it sees every later change once and none it already
has. A feed message that skips revs (a dropped pub/sub message, a feed outage) is filled
from the store's log first, or, when the log no longer reaches back, with one `replace`
change carrying the whole state. The lane also keeps the cursor's commit tag: a change that
does not name it as its `prev` belongs to a rewritten history (Redis lost data), and members
get the whole state instead.

No turn waits on itself. A lane is one turn per room: while an operation runs, the room's
next one waits. So no operation may await anything that can need the same lane, and
delivery to one member must never wait on another. How the design keeps to that:
- Delivery does not await at all: `Members.deliver` puts the change on each recipient's own
  send queue and returns (kpk_io/engine/outbox.py). A send could otherwise find a client's ping
  overdue and run its disconnect handler inline, which leaves this room through this lane:
  the lane would wait on itself, and the room would be wedged on this node.
- A closed connection leaves its rooms with `forget`, which takes effect at once, outside
  the lanes (a lane only learns of it, to retire when it is empty). The disconnect handler
  runs inline in whatever task noticed the close (engineio's service task, a socket's
  writer, an emit), so it must not wait behind a lane busy with the store either.
- `Members.enter` and `Members.leave` only update the Socket.IO room map; they send nothing.
- What does drop members (`Members.resync`, which runs their disconnect handlers) runs in a
  task of its own, never awaited by a lane.
- The lane does await the store (watch, snapshot, log): the store never calls back into
  the hub while one of its calls is awaited; its feed calls `on_change` and
  `on_feed_restored`, which only queue work and return.
"""

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from kpk_io.change import Change, CommittedChange, Snapshot
from kpk_io.hub_lane import Lane, Members, settle
from kpk_io.logs import bind_request
from kpk_io.store.base import StateStore, StoreUnavailable

log = logging.getLogger(__name__)

_RETRY_DELAY = 1.0


class Hub:
    """The store's ChangeListener: whoever builds a Hub connects it with
    `store.set_listener(hub)` (app.create_app does)."""

    def __init__(self, store: StateStore, members: Members) -> None:
        self._store = store
        self._members = members
        self._lanes: dict[str, Lane] = {}
        # sid -> its rooms here: a tuple (48 bytes for one room; a set is 216) per connection
        self._rooms_of: dict[str, tuple[str, ...]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.catch_ups = 0  # rooms caught up from the log (a metric)

    @property
    def room_count(self) -> int:
        """Rooms with at least one member on this node."""
        return sum(1 for lane in self._lanes.values() if lane.members)

    def rooms_joined(self, sid: str) -> int:
        return len(self._rooms_of.get(sid, ()))

    def is_member(self, sid: str, room: str) -> bool:
        lane = self._lanes.get(room)
        return lane is not None and sid in lane.members

    async def join(self, sid: str, room: str) -> Snapshot:
        """Make `sid` a member and return the snapshot its membership starts from. Joins
        that wait for the room's lane together are admitted together, on one snapshot."""
        done: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        lane = self._lane(room)
        lane.joiners.append((sid, done))
        if len(lane.joiners) == 1:  # else the admission queued already takes this one too
            self._put(lane, self._admit_joiners)
        return await done

    async def leave(self, sid: str, room: str) -> None:
        if not self.is_member(sid, room):
            return  # no lane (and no task) for a room this socket is not in
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def op(lane: Lane) -> None:
            if sid in lane.members:
                lane.members.discard(sid)
                self._drop_room_of(sid, room)
                await self._members.leave(sid, room)
            done.set_result(None)

        self._submit(room, op)
        await done

    def forget(self, sid: str) -> None:
        """Drop a closed connection from all its rooms, now, without waiting for any lane:
        nothing is delivered to it from here on. Its Socket.IO rooms are python-socketio's
        to clear, as it does for every closed connection."""
        for room in self._rooms_of.pop(sid, ()):
            lane = self._lanes.get(room)
            if lane is not None and sid in lane.members:
                lane.members.discard(sid)
                self._put(lane, settle)  # wakes the lane, which retires when empty

    def _drop_room_of(self, sid: str, room: str) -> None:
        rooms = tuple(other for other in self._rooms_of.get(sid, ()) if other != room)
        if rooms:
            self._rooms_of[sid] = rooms
        else:
            self._rooms_of.pop(sid, None)

    async def close(self) -> None:
        for lane in list(self._lanes.values()):
            if lane.worker is not None:
                lane.worker.cancel()
        self._lanes.clear()

    # ChangeListener: called by the store's feed, so never blocks.
    def on_change(self, committed: CommittedChange) -> None:
        lane = self._lanes.get(committed.room)
        if lane is None:
            return
        if not lane.busy and not lane.ops and lane.follows(committed):
            # The lane has nothing to do before it, and delivering it needs no await: done
            # here, in the lane's order, without waking its task (the common case).
            self._deliver(lane, committed)
        else:
            self._put(lane, lambda lane: self._advance(lane, committed))

    def catch_up_member(self, sid: str, room: str) -> None:
        """A member whose deliveries were held back (its connection had more buffered than
        the cap) has read what was buffered: it gets the room's whole state, in the lane's
        order, so every later change follows it."""
        lane = self._lanes.get(room)
        if lane is None:
            self._members.release(sid, room)
        else:
            self._put(lane, partial(self._send_whole, sid=sid))

    async def _send_whole(self, lane: Lane, sid: str) -> None:
        if sid not in lane.members:
            self._members.release(sid, lane.room)
            return
        try:
            whole = await self._store.snapshot(lane.room)
        except StoreUnavailable as exc:
            log.error("cannot catch a member up (%s); retrying", exc)
            loop = asyncio.get_running_loop()
            loop.call_later(_RETRY_DELAY, self._put, lane, partial(self._send_whole, sid=sid))
            return
        state = Change(whole.state, (), replace=True)
        self._members.send_whole(sid, CommittedChange(lane.room, whole.rev, state, tag=whole.tag))

    def on_feed_restored(self) -> None:
        for lane in self._lanes.values():
            self._put(lane, self._catch_up)

    def _submit(self, room: str, op: Callable[[Lane], Awaitable[None]]) -> None:
        self._put(self._lane(room), op)

    def _lane(self, room: str) -> Lane:
        lane = self._lanes.get(room)
        if lane is None:
            lane = self._lanes[room] = Lane(room)
        return lane

    def _put(self, lane: Lane, op: Callable[[Lane], Awaitable[None]]) -> None:
        """Queue `op` on the lane, starting its worker if it has none: a lane with nothing
        to do holds no task (an idle room's task, queue and frames were kilobytes)."""
        if self._lanes.get(lane.room) is not lane:
            return  # retired meanwhile (a retry timer's op): nothing of its is left to do
        lane.ops.append(op)
        if lane.worker is None or lane.worker.done():
            lane.worker = asyncio.create_task(
                self._work(lane), name=f"kpk-io lane {lane.room!r}",
                context=contextvars.Context(),
            )

    async def _work(self, lane: Lane) -> None:
        with bind_request(None, lane.room):
            await self._work_lane(lane)

    async def _work_lane(self, lane: Lane) -> None:
        """Run the lane's operations in turn; then end, and retire the lane when it has
        no members left (unwatching its room first)."""
        while True:
            while lane.ops:
                op = lane.ops.popleft()
                lane.busy = True
                try:
                    await op(lane)
                except Exception:
                    log.exception("lane operation failed")
                finally:
                    lane.busy = False
            if lane.members:
                lane.worker = None  # the next operation starts one again
                return
            if lane.watched:
                lane.watched = False
                with contextlib.suppress(StoreUnavailable):
                    await self._store.unwatch(lane.room)
                continue  # operations queued meanwhile (a join) run first
            if self._lanes.get(lane.room) is lane:
                del self._lanes[lane.room]
            lane.worker = None
            return

    async def _admit_joiners(self, lane: Lane) -> None:
        joiners, lane.joiners = lane.joiners, []
        try:
            snapshot = await self._admit(lane, [sid for sid, _ in joiners])
        except Exception as exc:  # handed to the joiners, who answer for it
            for _, done in joiners:
                if not done.done():
                    done.set_exception(exc)
        else:
            for _, done in joiners:
                if not done.done():
                    done.set_result(snapshot)

    async def _admit(self, lane: Lane, sids: list[str]) -> Snapshot:
        if not lane.watched:
            await self._store.watch(lane.room)
            lane.watched = True
            lane.cursor = None
        snapshot = await self._store.snapshot(lane.room, renew=True)  # a join renews retention
        if lane.cursor is None:
            lane.cursor, lane.tag = snapshot.rev, snapshot.tag
        elif (snapshot.rev, snapshot.tag) != (lane.cursor, lane.tag):
            await self._fill(lane, snapshot)
        for sid in sids:
            if sid not in lane.members:
                await self._members.enter(sid, lane.room)
                lane.members.add(sid)
                rooms = self._rooms_of.get(sid, ())
                if lane.room not in rooms:
                    self._rooms_of[sid] = (*rooms, lane.room)
        return snapshot

    async def _advance(self, lane: Lane, committed: CommittedChange) -> None:
        if lane.cursor is None or committed.rev < lane.cursor:
            return  # before the first join's snapshot, or already delivered
        again = committed.rev == lane.cursor  # delivered, or handed out anew: Redis lost data
        if again and committed.tag in (None, lane.tag):
            return
        if lane.follows(committed):
            self._deliver(lane, committed)
            return
        other_history = lane.tag is not None and committed.prev and committed.prev != lane.tag
        log.warning("feed went from rev %d to %d%s; catching up from the log", lane.cursor,
                    committed.rev, " on another history" if again or other_history else "")
        await self._catch_up(lane)

    async def _catch_up(self, lane: Lane) -> None:
        if lane.cursor is None or not lane.members:
            return
        self.catch_ups += 1
        try:
            await self._fill(lane, None)
        except StoreUnavailable as exc:
            log.error("cannot catch up (%s); retrying", exc)
            loop = asyncio.get_running_loop()
            loop.call_later(_RETRY_DELAY, self._put, lane, self._catch_up)

    async def _fill(self, lane: Lane, snapshot: Snapshot | None) -> None:
        """Deliver what members miss up to `snapshot` (or up to now, when None)."""
        assert lane.cursor is not None
        upto = snapshot.rev if snapshot is not None else None
        changes = await self._store.changes_since(lane.room, lane.cursor, lane.tag)
        if changes is not None:
            for committed in changes:
                if upto is None or committed.rev <= upto:
                    self._deliver(lane, committed)
            return
        whole = snapshot or await self._store.snapshot(lane.room)
        if whole.rev > lane.cursor:
            # The log no longer reaches the cursor, or the history since was rewritten:
            # either way the whole state, as one replacing change, is right for everyone.
            log.warning("cannot list changes after rev %d; sending the whole state", lane.cursor)
            state = Change(whole.state, (), replace=True)
            self._deliver(lane, CommittedChange(lane.room, whole.rev, state, tag=whole.tag))
        elif (whole.rev, whole.tag) != (lane.cursor, lane.tag):
            # Redis lost data (a failover, a restored backup): members hold revs that the
            # store hands out again, to other changes, and would ignore those; they start over.
            log.error("the store went back from rev %d to %d; members join again",
                      lane.cursor, whole.rev)
            lane.cursor, lane.tag = whole.rev, whole.tag
            # In a task of its own: dropping a member runs its disconnect handler, which
            # leaves this room through this very lane.
            task = asyncio.create_task(self._members.resync(lane.room))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _deliver(self, lane: Lane, committed: CommittedChange) -> None:
        lane.cursor, lane.tag = committed.rev, committed.tag
        if lane.members:
            self._members.deliver(committed)


