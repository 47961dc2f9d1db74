"""kpk_io/text_check.py: every edit a Y.Text makes passes; random and mutated bytes either
are refused or are cheap for pycrdt to apply (unchecked, some cost it seconds)."""

import contextlib
import os
import random
import time

import pycrdt
import pytest

from kpk_io.text_check import InvalidText, check_update


def typing_updates(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
    text = doc.get("text", type=pycrdt.Text)
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    for _ in range(500):
        size = len(str(text))
        if size > 5 and rng.random() < 0.3:
            at = rng.randrange(size - 2)
            del text[at:at + 2]
        else:
            text.insert(rng.randrange(size + 1), rng.choice(["a", "é", "xyz"]))
    text.insert(len(str(text)), "😀 end")
    text.format(0, 3, {"bold": True})
    text.insert_embed(1, {"image": "x"})
    doc.unobserve(subscription)
    return [*updates, doc.get_update(), pycrdt.merge_updates(*updates), pycrdt.Doc().get_update()]


def test_every_edit_of_a_text_passes() -> None:
    for update in typing_updates(1):
        check_update(update)


@pytest.mark.parametrize("root", [("other", pycrdt.Text), ("text", pycrdt.Map)])
def test_other_types_are_refused(root: tuple[str, type]) -> None:
    doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
    name, kind = root
    shared = doc.get(name, type=kind)
    if isinstance(shared, pycrdt.Map):
        shared["a"] = 1
    else:
        shared.insert(0, "x")
    with pytest.raises(InvalidText):
        check_update(doc.get_update())


def test_fuzzed_updates_are_refused_or_cheap() -> None:
    rng = random.Random(7)
    valid = typing_updates(2)
    slowest = 0.0
    for _ in range(3000):
        if rng.random() < 0.5:
            data = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            data = bytearray(os.urandom(rng.randint(0, 20)))
        try:
            check_update(bytes(data))
        except InvalidText:
            continue
        started = time.perf_counter()
        doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
        doc.get("text", type=pycrdt.Text)
        with contextlib.suppress(ValueError):
            doc.apply_update(bytes(data))
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 0.25  # unchecked inputs of this size took pycrdt up to 1.6 s
