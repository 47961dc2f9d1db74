"""The demo's note is a text: two Chromium pages typing into it at the same time keep every
character of both, each person's in the order typed, on both pages and after a reload."""

from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, expect

from tests.processes import KpkServer
from tests.test_browser import (  # noqa: F401  (fixtures)
    LIVE_TIMEOUT,
    expect_status,
    new_context,
    notes_path,
    open_demo,
)
from tests.test_text import in_order


def note(page: Page) -> str:
    value = page.locator("#note").input_value()
    assert isinstance(value, str)
    return value


def test_two_pages_typing_into_the_note_at_once_keep_both(
    redis_kpk: KpkServer, new_context: Callable[[], BrowserContext], notes_path: str  # noqa: F811
) -> None:
    alice = open_demo(new_context(), redis_kpk.url + notes_path)
    bob = open_demo(new_context(), redis_kpk.url + notes_path)
    alice.locator("#title").fill("Plan")  # a plain field beside the text
    typed = {alice: "", bob: ""}
    for round_ in range(6):
        words = {alice: f"apple{round_} pie; ", bob: f"BANANA{round_} SPLIT! "}
        for page in (alice, bob):
            page.locator("#note").focus()
        # Keystroke by keystroke, in turn: both pages edit within one debounce window, so
        # neither has seen the other's edits when it sends its own.
        for a, b in zip(words[alice], words[bob], strict=False):
            alice.keyboard.type(a)
            bob.keyboard.type(b)
        for page, word in words.items():
            rest = word[len(words[alice if page is bob else bob]):]
            if rest:
                page.keyboard.type(rest)
            typed[page] += word
    total = len(typed[alice]) + len(typed[bob])
    for page in (alice, bob):
        expect(page.locator("#pending")).to_have_attribute("data-count", "0", timeout=10_000)
    expect(bob.locator("#note")).to_have_value(note(alice), timeout=10_000)
    text = note(alice)
    assert len(text) == total, text
    assert in_order(typed[alice], text) and in_order(typed[bob], text), text
    assert alice.evaluate("window.__kpk.room.state.note") == text
    for page in (alice, bob):
        page.reload()
        expect_status(page, "live", LIVE_TIMEOUT)
        expect(page.locator("#note")).to_have_value(text)
        expect(page.locator("#title")).to_have_value("Plan")


def test_typing_into_the_note_after_another_page_unset_it_converges(
    redis_kpk: KpkServer, new_context: Callable[[], BrowserContext], notes_path: str  # noqa: F811
) -> None:
    """Review B1 in the browser: the bound <textarea> follows the text when it starts over
    (unset elsewhere), and what is typed into it then reaches every page and the server."""
    alice = open_demo(new_context(), redis_kpk.url + notes_path)
    bob = open_demo(new_context(), redis_kpk.url + notes_path)
    alice.locator("#note").focus()
    alice.keyboard.type("old text")
    expect(bob.locator("#note")).to_have_value("old text", timeout=10_000)
    alice.evaluate("window.__kpk.room.unset('note')")
    expect(bob.locator("#note")).to_have_value("", timeout=10_000)
    bob.locator("#note").focus()
    bob.keyboard.type("new ")
    for page in (alice, bob):
        expect(page.locator("#note")).to_have_value("new ", timeout=10_000)
        expect(page.locator("#pending")).to_have_attribute("data-count", "0", timeout=10_000)
    assert alice.evaluate("window.__kpk.room.state.note") == "new "
    bob.reload()
    expect_status(bob, "live", LIVE_TIMEOUT)
    expect(bob.locator("#note")).to_have_value("new ")
