"""The end-of-run checks, on what every worker recorded and what Redis holds.

Each check returns how many things it checked and what it found wrong; `verdicts()` puts
them in the summary. What cannot be decided (a change sent whose outcome nobody learnt may
explain a value) is counted as `unverifiable`, never passed off as checked."""

import bisect
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmarks.soak.journal import Commit, Journal
from kpk_io.change import JSON, Change, State

MAX_LISTED = 20


@dataclass
class Verdict:
    checked: int = 0
    violations: list[Any] = field(default_factory=list)
    unverifiable: int = 0
    note: str | None = None
    binding: bool = True  # False: reported, but not a failure of the run (see `note`)

    @property
    def ok(self) -> bool:
        return not self.binding or not self.violations

    def to_json(self) -> dict[str, JSON]:
        body: dict[str, JSON] = {"ok": self.ok, "checked": self.checked,
                                 "violation_count": len(self.violations),
                                 "violations": self.violations[:MAX_LISTED]}
        if self.unverifiable:
            body["unverifiable"] = self.unverifiable
        if self.note:
            body["note"] = self.note
        return body


@dataclass
class Evidence:
    """Everything the checks look at."""

    results: list[dict[str, Any]]  # one per worker (worker.py)
    stored: dict[str, tuple[int, State]]  # room -> rev and state in Redis at the end
    probe_commits: list[tuple[str, int, Commit]]
    joins: list[dict[str, JSON]]  # failed final join probes
    wedges: list[dict[str, JSON]]  # joins that hung during the run
    memory: list[dict[str, JSON]]  # per node: baseline, peak, end, bound (MiB)
    durable: bool  # appendfsync always: acked must mean durable


def verdicts(evidence: Evidence) -> dict[str, Verdict]:
    merged = _merge(evidence)
    history = _History(merged, evidence)
    found = {
        "states_match": _states_match(evidence),
        "acked_durable": history.acked_durable(),
        "history_replays": history.replays(),
        "delivery_in_order": _listed(evidence, "order", "connections"),
        "no_gaps": history.no_gaps(),
        "applied_once": history.applied_once(),
        "history_not_rewritten": _rewrites(merged, evidence),
        "no_wedged_room": _not_wedged(evidence),
        "memory_bounded": _memory(evidence),
    }
    if not evidence.durable:
        for name in ("acked_durable", "history_replays", "history_not_rewritten"):
            found[name].binding = False
            found[name].note = ("appendfsync everysec: a machine crash may lose the last "
                                "second or two of acknowledged changes; reported, not enforced")
    return found


def _merge(evidence: Evidence) -> Journal:
    merged = Journal()
    for result in evidence.results:
        for room, revs in result["journal"]["commits"].items():
            for rev, commit in revs.items():
                merged.learn(room, int(rev), commit)
        merged.rewrites.extend(result["journal"]["rewrites"])
        merged.acked.extend(tuple(a) for a in result["journal"]["acked"])
    for room, rev, commit in evidence.probe_commits:
        merged.learn(room, rev, commit)
        merged.acked.append((room, rev, commit[1]))
    return merged


def _states_match(evidence: Evidence) -> Verdict:
    verdict = Verdict()
    for result in evidence.results:
        verdict.checked += len(result["views"])
        verdict.violations += [v for v in result["views"] if not v["ok"]]
        if result["unflushed"]:
            verdict.violations.append({"unflushed members": result["unflushed"]})
    return verdict


def _listed(evidence: Evidence, key: str, count: str) -> Verdict:
    verdict = Verdict()
    for result in evidence.results:
        verdict.checked += result["journal"][count]
        verdict.violations += result["journal"][key]
    return verdict


def _rewrites(merged: Journal, evidence: Evidence) -> Verdict:
    return Verdict(sum(len(revs) for revs in merged.commits.values()), merged.rewrites)


def _not_wedged(evidence: Evidence) -> Verdict:
    checked = len(evidence.stored) * len(evidence.memory)
    return Verdict(checked, [*evidence.wedges, *evidence.joins])


def _memory(evidence: Evidence) -> Verdict:
    verdict = Verdict(len(evidence.memory))
    verdict.violations = [m for m in evidence.memory if float(m["end_mb"]) > float(m["bound_mb"])]
    return verdict


class _History:
    """Each room's commits as all clients together learnt them."""

    def __init__(self, merged: Journal, evidence: Evidence) -> None:
        self._merged = merged
        self._evidence = evidence
        self._id_revs: dict[tuple[str, str], set[int]] = defaultdict(set)
        self._writer: dict[tuple[str, str, str], int] = {}
        self._touches: dict[tuple[str, str], list[int]] = defaultdict(list)
        self._replaces: dict[str, list[int]] = defaultdict(list)
        for room, revs in merged.commits.items():
            for rev in sorted(revs):
                self._index(room, rev, revs[rev])
        self._unresolved = self._unresolved_sent()

    def _index(self, room: str, rev: int, commit: Commit) -> None:
        _, change_id, fields, unset, replace = commit
        if change_id is not None:
            self._id_revs[(room, change_id)].add(rev)
        for name, value in fields.items():
            self._writer[(room, name, json.dumps(value, sort_keys=True))] = rev
            self._touches[(room, name)].append(rev)
        for name in unset:
            self._touches[(room, name)].append(rev)
        if replace:
            self._replaces[room].append(rev)

    def _unresolved_sent(self) -> dict[str, list[list[Any]]]:
        """Changes sent whose rev no client ever learnt, by room: they may or may not have
        been committed, so they may explain a value."""
        found: dict[str, list[list[Any]]] = defaultdict(list)
        for result in self._evidence.results:
            for room, change_id, *change in result["journal"]["unresolved_sent"]:
                if (room, change_id) not in self._id_revs:
                    found[room].append(change)
        return found

    def _touched_after(self, room: str, name: str, rev: int) -> bool:
        final = self._evidence.stored[room][0]
        for revs in (self._touches.get((room, name), []), self._replaces.get(room, [])):
            index = bisect.bisect_right(revs, rev)
            if index < len(revs) and revs[index] <= final:
                return True
        return False

    def _maybe_touched(self, room: str, name: str) -> bool:
        return any(name in fields or name in unset or replace
                   for fields, unset, replace in self._unresolved.get(room, []))

    def acked_durable(self) -> Verdict:
        verdict = Verdict(note="each acknowledged change is in the stored state or a later "
                               "commit touched the same field")
        for room, rev, change_id in set(self._merged.acked):
            commit = self._merged.commits.get(room, {}).get(rev)
            verdict.checked += 1
            if commit is None or commit[1] != change_id:
                verdict.violations.append({"room": room, "rev": rev, "id": change_id,
                                           "problem": "acked rev holds another change"})
                continue
            for name, outcome in self._field_outcomes(room, rev, commit):
                if outcome == "unverifiable":
                    verdict.unverifiable += 1
                elif outcome != "ok":
                    verdict.violations.append({"room": room, "rev": rev, "id": change_id,
                                               "field": name, "problem": outcome})
        return verdict

    def _field_outcomes(self, room: str, rev: int, commit: Commit) -> list[tuple[str, str]]:
        state = self._evidence.stored[room][1]
        _, _, fields, unset, replace = commit
        outcomes = []
        for name, value in fields.items():
            kept = state.get(name) == value
            outcomes.append((name, "ok" if kept else self._explained(room, name, rev)))
        removed = list(unset) + ([n for n in state if n not in fields] if replace else [])
        for name in removed:
            if name not in state:
                outcomes.append((name, "ok"))
                continue
            writer = self._writer.get((room, name, json.dumps(state[name], sort_keys=True)))
            if writer is not None and writer > rev:
                outcomes.append((name, "ok"))
            else:
                outcomes.append((name, self._explained(room, name, rev)))
        return outcomes

    def _explained(self, room: str, name: str, rev: int) -> str:
        if self._touched_after(room, name, rev):
            return "ok"
        if self._maybe_touched(room, name):
            return "unverifiable"
        return "lost: the stored value is not this change's, and no later change touched it"

    def replays(self) -> Verdict:
        """Where every rev of a room is known, replaying them must give the stored state."""
        verdict = Verdict()
        for room, (final, state) in self._evidence.stored.items():
            revs = self._merged.commits.get(room, {})
            if any(rev not in revs for rev in range(1, final + 1)):
                verdict.unverifiable += 1
                continue
            verdict.checked += 1
            replayed: State = {}
            for rev in range(1, final + 1):
                _, _, fields, unset, replace = revs[rev]
                Change(fields, tuple(unset), replace).apply_to(replayed)
            if replayed != state:
                differs = sorted(k for k in set(state) | set(replayed)
                                 if state.get(k) != replayed.get(k))
                verdict.violations.append({"room": room, "rev": final, "differs": differs})
        return verdict

    def applied_once(self) -> Verdict:
        verdict = Verdict(len(self._id_revs))
        verdict.violations = [{"room": room, "id": change_id, "revs": sorted(revs)}
                              for (room, change_id), revs in self._id_revs.items()
                              if len(revs) > 1]
        return verdict

    def no_gaps(self) -> Verdict:
        """Skipped revs are a violation unless they were the connection's own changes."""
        verdict = Verdict()
        for result in self._evidence.results:
            verdict.checked += result["journal"]["connections"]
            for skip in result["journal"]["skips"]:
                own = {rev for change_id in skip["own_ids"]
                       for rev in self._id_revs.get((skip["room"], change_id), ())}
                missing = [rev for rev in skip["missing"] if rev not in own]
                if missing:
                    verdict.violations.append({**skip, "missing": missing, "own_ids": None})
        return verdict
