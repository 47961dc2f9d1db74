"""What one worker's clients saw: the commits they learnt of, their acks, and, per
connection and room, the revs the server delivered. Plain data, shipped to the coordinator
as JSON, where invariants.py checks it."""

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kpk_io.change import JSON

# A commit as [tag, id, set, unset, replace]: compact, and JSON as it stands.
Commit = list[Any]


def commit_of(body: dict[str, JSON], change_id: str | None = None) -> Commit:
    """A commit record from an `update` body, a sync entry, or an update payload."""
    return [
        body.get("tag"),
        body.get("id", change_id),
        dict(body.get("set") or {}),
        list(body.get("unset") or []),
        bool(body.get("replace", False)),
    ]


@dataclass
class ConnectionView:
    """One connection's view of one room, as the server drove it."""

    joined: int | None = None  # rev of the first join ack on this connection
    delivered: list[tuple[int, bool]] = field(default_factory=list)  # (rev, whole state)
    own_revs: set[int] = field(default_factory=set)  # acked on this connection
    own_ids: set[str] = field(default_factory=set)  # sent on this connection


@dataclass
class Journal:
    commits: dict[str, dict[int, Commit]] = field(default_factory=dict)
    rewrites: list[dict[str, JSON]] = field(default_factory=list)
    acked: list[tuple[str, int, str]] = field(default_factory=list)
    sent: dict[str, tuple[str, Commit]] = field(default_factory=dict)  # id -> (room, change)
    views: dict[tuple[str, int, str], ConnectionView] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def view(self, client: str, epoch: int, room: str) -> ConnectionView:
        return self.views.setdefault((client, epoch, room), ConnectionView())

    def learn(self, room: str, rev: int, commit: Commit) -> None:
        """Record a commit; two different ones at one rev mean a rewritten history."""
        known = self.commits.setdefault(room, {})
        old = known.get(rev)
        if old is None or (old[1] is None and commit[1] is not None):
            known[rev] = commit
            return
        if commit[1] is None:
            return  # a whole-state catch-up at a rev we know the change of
        # A duplicate ack may come without a tag (the log no longer has it): only two tags,
        # or two ids, that differ show two different commits at one rev.
        if old[1] != commit[1] or (old[0] and commit[0] and old[0] != commit[0]):
            self.rewrites.append({"room": room, "rev": rev, "first": old[:2],
                                  "then": commit[:2]})
        elif old[0] is None:
            old[0] = commit[0]

    def export(self) -> dict[str, JSON]:
        """The journal as JSON, with the per-connection checks already made."""
        known_ids = {c[1] for revs in self.commits.values() for c in revs.values()}
        return {
            "commits": {room: {str(rev): c for rev, c in revs.items()}
                        for room, revs in self.commits.items()},
            "rewrites": self.rewrites,
            "acked": self.acked,
            "unresolved_sent": [[room, change_id, *commit[2:]] for change_id, (room, commit)
                                in self.sent.items() if change_id not in known_ids],
            "order": [v for key, view in self.views.items() if (v := _disorder(key, view))],
            "skips": [s for key, view in self.views.items()
                      for s in _skips(key, view, self.commits.get(key[2], {}), known_ids)],
            "connections": len(self.views),
            "counts": dict(self.counts),
        }


def _disorder(key: tuple[str, int, str], view: ConnectionView) -> dict[str, JSON] | None:
    """The first delivery that did not come after the one before it, if any."""
    revs = [rev for rev, _ in view.delivered]
    for before, after in itertools.pairwise(revs):
        if after <= before:
            return {"client": key[0], "connection": key[1], "room": key[2],
                    "delivered": after, "after": before}
    return None


def _skips(
    key: tuple[str, int, str], view: ConnectionView, commits: dict[int, Commit],
    known_ids: set[str | None],
) -> list[dict[str, JSON]]:
    """Revs the server jumped over without a whole state, that were not this connection's
    own (the server never sends a member its own change). Own changes whose rev this worker
    never learnt are left to the coordinator, which knows every worker's commits."""
    if view.joined is None:
        return []
    found = []
    cursor = view.joined
    for rev, whole in view.delivered:
        missing = [r for r in range(cursor + 1, rev) if r not in view.own_revs
                   and commits.get(r, [None, None])[1] not in view.own_ids]
        if missing and not whole:
            unknown = sorted(i for i in view.own_ids if i not in known_ids)
            found.append({"client": key[0], "connection": key[1], "room": key[2],
                          "from": cursor, "to": rev, "missing": missing[:50],
                          "own_ids": unknown})
        cursor = max(cursor, rev)
    return found
