"""The soak tool's checks catch what they claim to: each violation, fabricated, is found."""

from typing import Any

from benchmarks.soak.invariants import Evidence, Verdict, verdicts
from benchmarks.soak.journal import Journal, commit_of

ROOM = "soak/room-0"


def change(rev: int, change_id: str, **body: Any) -> tuple[int, list[Any]]:
    return rev, commit_of({"tag": f"t{rev}", "id": change_id, **body})


def evidence(journal: Journal, stored: dict[str, Any], rev: int,
             durable: bool = True) -> dict[str, Verdict]:
    result = {"journal": journal.export(), "views": [], "unflushed": 0}
    return verdicts(Evidence([result], {ROOM: (rev, stored)}, [], [], [], [], durable))


def history(*commits: tuple[int, list[Any]], acked: bool = True) -> Journal:
    journal = Journal()
    for rev, commit in commits:
        journal.learn(ROOM, rev, commit)
        if acked:
            journal.acked.append((ROOM, rev, commit[1]))
    return journal


def failing(found: dict[str, Verdict]) -> set[str]:
    return {name for name, verdict in found.items() if not verdict.ok}


def test_a_consistent_history_passes() -> None:
    journal = history(change(1, "a", set={"f": "x"}), change(2, "b", set={"g": "y"}),
                      change(3, "c", unset=["f"]))
    assert failing(evidence(journal, {"g": "y"}, 3)) == set()


def test_a_lost_acknowledged_change_is_found() -> None:
    journal = history(change(1, "a", set={"f": "x"}), change(2, "b", set={"g": "y"}))
    found = evidence(journal, {"g": "y"}, 2)
    assert failing(found) == {"acked_durable", "history_replays"}
    assert found["acked_durable"].violations[0]["id"] == "a"


def test_a_superseded_change_is_not_lost() -> None:
    journal = history(change(1, "a", set={"f": "x"}), change(2, "b", set={"f": "z"}))
    assert failing(evidence(journal, {"f": "z"}, 2)) == set()


def test_a_value_a_change_of_unknown_outcome_may_explain_is_unverifiable() -> None:
    journal = history(change(1, "a", set={"f": "x"}))
    journal.sent["lost-ack"] = (ROOM, commit_of({"set": {"f": "w"}}))
    found = evidence(journal, {"f": "w"}, 2)
    assert found["acked_durable"].violations == []
    assert found["acked_durable"].unverifiable == 1


def test_a_change_applied_twice_is_found() -> None:
    journal = history(change(1, "a", set={"f": "x"}), change(2, "a", set={"f": "x"}))
    assert "applied_once" in failing(evidence(journal, {"f": "x"}, 2))


def test_skipped_and_reordered_deliveries_are_found() -> None:
    journal = history(change(1, "a", set={"f": 1}), change(2, "b", set={"f": 2}),
                      change(3, "c", set={"f": 3}))
    journal.view("c0", 1, ROOM).joined = 0
    journal.view("c0", 1, ROOM).delivered = [(1, False), (3, False)]
    journal.view("c1", 1, ROOM).joined = 0
    journal.view("c1", 1, ROOM).delivered = [(2, False), (1, False)]
    found = evidence(journal, {"f": 3}, 3)
    assert found["no_gaps"].violations[0]["missing"] == [2]
    assert found["delivery_in_order"].violations[0]["client"] == "c1"


def test_own_changes_and_whole_states_fill_gaps() -> None:
    journal = history(change(1, "a", set={"f": 1}), change(2, "b", set={"f": 2}),
                      change(3, "c", set={"f": 3}), change(4, "d", set={"f": 4}))
    own = journal.view("c0", 1, ROOM)
    own.joined, own.delivered, own.own_ids = 0, [(1, False), (3, False)], {"b"}
    caught_up = journal.view("c1", 1, ROOM)
    caught_up.joined, caught_up.delivered = 0, [(1, False), (4, True)]
    assert failing(evidence(journal, {"f": 4}, 4)) == set()


def test_a_rewritten_history_fails_only_when_acks_must_be_durable() -> None:
    journal = history(change(1, "a", set={"f": "x"}))
    journal.learn(ROOM, 1, commit_of({"tag": "other", "id": "b", "set": {"f": "y"}}))
    assert "history_not_rewritten" in failing(evidence(journal, {"f": "y"}, 1))
    assert failing(evidence(journal, {"f": "y"}, 1, durable=False)) == set()
