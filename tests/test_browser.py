"""The browser client and the notes demo in headless Chromium (Debian's), against real
`kpk-io serve` processes on a private Redis. Every wait polls with a deadline."""

import asyncio
import re
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from kpk_io.change import CommittedChange, Snapshot
from kpk_io.store.redis import RedisStateStore
from tests.conftest import StartKpk
from tests.processes import (
    KpkServer,
    RedisServer,
    port_open,
    wait_until,
)

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "demo.png"
LIVE_TIMEOUT = 10_000  # ms: page load, join
RECONNECT_TIMEOUT = 20_000  # ms: socket.io's backoff is at most 5 s (plus jitter) between tries

# Records, in the page, the ids of the `update` requests it sends and of the `update` events it
# receives, at the socket.io-client level.
RECORD_UPDATES = """() => {
  const { client } = window.__kpk;
  window.__sentIds = [];
  window.__receivedIds = [];
  const record = (ids) => (event, body) => event === "update" && ids.push(body.id);
  client.socket.onAnyOutgoing(record(window.__sentIds));
  client.socket.onAny(record(window.__receivedIds));
}"""


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[[], BrowserContext]]:
    """Separate browser contexts: each one is a different person's browser."""
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(viewport={"width": 1100, "height": 820})
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def notes_path() -> str:
    """A demo URL path of this test's own."""
    return f"/demo/notes/org-{uuid.uuid4().hex[:8]}/launch/plan"


def open_demo(context: BrowserContext, url: str) -> Page:
    page = context.new_page()
    page.goto(url)
    expect_status(page, "live", LIVE_TIMEOUT)
    page.evaluate(RECORD_UPDATES)
    return page


def expect_status(page: Page, status: str, timeout: int) -> None:
    expect(page.locator("#status")).to_have_attribute("data-status", status, timeout=timeout)


def expect_no_echo(*pages: Page) -> None:
    """No page ever received an update it had sent itself."""
    for page in pages:
        sent = set(page.evaluate("window.__sentIds"))
        received = set(page.evaluate("window.__receivedIds"))
        assert sent, "the page sent updates"
        assert not sent & received
        assert page.evaluate("window.__kpk.client.stats.echoes") == 0


def add_item(page: Page, text: str) -> None:
    page.fill("#new-item", text)
    page.press("#new-item", "Enter")


def test_two_pages_on_one_url_see_each_others_typing_within_a_second(
    redis_kpk: KpkServer, new_context: Callable[[], BrowserContext], notes_path: str
) -> None:
    alice = open_demo(new_context(), redis_kpk.url + notes_path)
    bob = open_demo(new_context(), redis_kpk.url + notes_path)

    alice.locator("#title").press_sequentially("Launch plan", delay=20)
    expect(bob.locator("#title")).to_have_value("Launch plan", timeout=1000)

    bob.locator("#note").press_sequentially("Beta to ten customers.\nFeedback by Friday.", delay=5)
    expect(alice.locator("#note")).to_have_value(
        "Beta to ten customers.\nFeedback by Friday.", timeout=1000
    )

    add_item(alice, "Write release notes")
    expect(bob.locator(".item .text")).to_have_value("Write release notes", timeout=1000)
    bob.locator(".item .done").check()
    expect(alice.locator(".item .done")).to_be_checked(timeout=1000)
    expect(alice.locator(".item")).to_have_class(re.compile(r"\bchecked\b"))

    for page in (alice, bob):
        expect(page.locator("#pending")).to_have_attribute("data-count", "0")
    assert alice.evaluate("window.__kpk.room.state") == bob.evaluate("window.__kpk.room.state")
    expect_no_echo(alice, bob)


def test_a_url_that_differs_in_one_segment_sees_nothing(
    redis_kpk: KpkServer, new_context: Callable[[], BrowserContext], notes_path: str
) -> None:
    context = new_context()
    writer = open_demo(context, redis_kpk.url + notes_path)
    same = open_demo(new_context(), redis_kpk.url + notes_path)
    org, project, page = notes_path.split("/")[3:]
    others = [
        open_demo(context, f"{redis_kpk.url}/demo/notes/{org}-x/{project}/{page}"),
        open_demo(context, f"{redis_kpk.url}/demo/notes/{org}/{project}2/{page}"),
        open_demo(context, f"{redis_kpk.url}/demo/notes/{org}/{project}/{page}s"),
    ]

    writer.fill("#title", "Only for this page")
    add_item(writer, "Private item")
    expect(same.locator("#title")).to_have_value("Only for this page", timeout=1000)
    expect(same.locator(".item")).to_have_count(1)

    for other in others:
        expect(other.locator("#title")).to_have_value("")
        expect(other.locator(".item")).to_have_count(0)
        assert other.evaluate("window.__kpk.room.state") == {}
        assert other.evaluate("window.__kpk.client.stats.updates") == 0
        assert other.evaluate("window.__kpk.room.rev") == 0


def test_a_reload_shows_the_saved_state(
    redis_kpk: KpkServer, new_context: Callable[[], BrowserContext], notes_path: str
) -> None:
    page = open_demo(new_context(), redis_kpk.url + notes_path)
    page.fill("#title", "Saved title")
    page.fill("#note", "first line\nsecond line")
    add_item(page, "Kept item")
    page.locator(".item .done").check()
    # No waiting for the debounce window: leaving the page flushes what is pending.
    page.reload()
    expect_status(page, "live", LIVE_TIMEOUT)
    expect(page.locator("#title")).to_have_value("Saved title")
    expect(page.locator("#note")).to_have_value("first line\nsecond line")
    expect(page.locator(".item .text")).to_have_value("Kept item")
    expect(page.locator(".item .done")).to_be_checked()
    expect(page.locator("#pending")).to_have_attribute("data-count", "0")


@pytest.mark.parametrize("stop", ["kill", "terminate"])
def test_server_stopped_and_restarted_reconnects_and_delivers_offline_edits(
    stop: str,
    redis_kpk: KpkServer,
    new_context: Callable[[], BrowserContext],
    notes_path: str,
) -> None:
    alice = open_demo(new_context(), redis_kpk.url + notes_path)
    bob = open_demo(new_context(), redis_kpk.url + notes_path)
    alice.fill("#title", "Before the restart")
    expect(bob.locator("#title")).to_have_value("Before the restart", timeout=1000)

    if stop == "kill":
        redis_kpk.kill()
    else:
        assert redis_kpk.terminate() == 0
    for page in (alice, bob):
        expect_status(page, "reconnecting", 3000)
        expect(page.locator("#status")).to_have_text("Reconnecting…")

    alice.fill("#title", "Typed while the server was down")
    alice.fill("#note", "kept in the page")
    add_item(alice, "Offline item")
    expect(alice.locator("#pending")).to_have_attribute("data-count", "3")
    expect(alice.locator("#pending")).to_have_text("3 unsaved changes")
    expect(bob.locator("#title")).to_have_value("Before the restart")

    wait_until(lambda: not port_open(redis_kpk.port), what="the old server's port to be free")
    redis_kpk.start()  # same port and flags: what the pages reconnect to
    for page in (alice, bob):
        expect_status(page, "live", RECONNECT_TIMEOUT)
    expect(bob.locator("#title")).to_have_value("Typed while the server was down", timeout=5000)
    expect(bob.locator("#note")).to_have_value("kept in the page")
    expect(bob.locator(".item .text")).to_have_value("Offline item")
    expect(alice.locator("#pending")).to_have_attribute("data-count", "0")
    assert alice.evaluate("window.__kpk.room.rev") == bob.evaluate("window.__kpk.room.rev") == 2
    expect_no_echo(alice)


def refused(server: KpkServer, code: str) -> float:
    """How many updates the server refused with `code`, from its /metrics."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = rf'^kpk_io_updates_refused_total{{code="{code}"}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_an_edit_answered_unavailable_in_a_redis_stall_is_saved_once(
    start_kpk: StartKpk,
    own_redis: RedisServer,
    new_context: Callable[[], BrowserContext],
    notes_path: str,
) -> None:
    """A stopped (SIGSTOP) Redis: the page's update is answered `unavailable` although Redis
    commits it once it resumes; the page syncs, sends it again with its id if it must, and
    ends with the stored state, every change it sent committed exactly once."""
    server = start_kpk("--redis-url", own_redis.url)
    page = open_demo(new_context(), server.url + notes_path)
    page.fill("#title", "Before the stall")
    expect(page.locator("#pending")).to_have_attribute("data-count", "0", timeout=5000)
    own_redis.pause()
    try:
        page.fill("#title", "Typed during the stall")
        wait_until(lambda: refused(server, "unavailable") >= 1, timeout=30,
                   what="an update answered unavailable")
    finally:
        own_redis.resume()
    expect(page.locator("#pending")).to_have_attribute("data-count", "0", timeout=30_000)
    room_id = page.evaluate("window.__kpk.room.id")

    async def stored() -> tuple[Snapshot, list[CommittedChange] | None]:
        store = RedisStateStore(own_redis.url)
        try:
            return await store.snapshot(room_id), await store.changes_since(room_id, 0)
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as thread:  # Playwright's own loop runs in this one
        snapshot, log = thread.submit(asyncio.run, stored()).result()
    assert snapshot.state["title"] == "Typed during the stall"
    assert page.evaluate("[window.__kpk.room.rev, window.__kpk.room.state]") == [
        snapshot.rev, snapshot.state
    ]
    assert log is not None
    committed_ids = [change.id for change in log]
    sent_ids = page.evaluate("window.__sentIds")
    assert len(committed_ids) == len(set(committed_ids)) == snapshot.rev  # none applied twice
    assert set(committed_ids) == set(sent_ids)  # and every one the page sent is in


def test_a_page_whose_url_names_no_room_shows_an_error_and_never_connects(
    redis_kpk: KpkServer, new_context: Callable[[], BrowserContext]
) -> None:
    page = new_context().new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(redis_kpk.url + "/demo/notes/undefined/launch/plan")
    expect(page.locator("#problem")).to_be_visible()
    expect(page.locator("#problem-text")).to_contain_text("does not name a notes page")
    expect(page.locator("#status")).to_have_text("No room")
    expect(page.locator("#sheet")).to_be_hidden()
    assert page.evaluate("'__kpk' in window") is False
    assert not [url for url in requests if "/socket.io/" in url]


def test_index_page_links_to_the_demo(
    redis_kpk: KpkServer, new_context: Callable[[], BrowserContext]
) -> None:
    page = new_context().new_page()
    page.goto(redis_kpk.url + "/")
    page.click("#demo-link")
    expect(page).to_have_url(re.compile(r"/demo/notes/acme/launch/plan$"))
    expect_status(page, "live", LIVE_TIMEOUT)


def test_screenshot_of_two_windows_editing_together(
    redis_kpk: KpkServer, browser: Browser, new_context: Callable[[], BrowserContext]
) -> None:
    """Saves docs/demo.png: two windows on one URL, as the README shows it."""
    path = "/demo/notes/acme/launch/plan"  # the server has a Redis key prefix of its own
    page = open_demo(new_context(), redis_kpk.url + path)
    page.fill("#title", "Q3 launch plan")
    page.fill("#note", "Beta goes to the first ten customers on Monday.\n"
                       "Collect feedback by Friday; pricing page after that.")
    for text in ("Write the release notes", "Book the customer demo", "Update the pricing page"):
        add_item(page, text)
    page.locator(".item .done").first.check()
    expect(page.locator("#pending")).to_have_attribute("data-count", "0", timeout=5000)

    frames = new_context().new_page()
    frames.set_viewport_size({"width": 1400, "height": 860})
    frames.set_content(_side_by_side(redis_kpk.url + path))
    for name in ("left", "right"):
        frame = frames.frame_locator(f"#{name}")
        expect(frame.locator("#status")).to_have_attribute(
            "data-status", "live", timeout=LIVE_TIMEOUT
        )
        expect(frame.locator(".item")).to_have_count(3)
    right = frames.frame_locator("#right")
    right.locator("#new-item").fill("Tell support about the beta")
    right.locator("#new-item").press("Enter")
    right.locator("#note").press("End")
    right.locator("#note").press_sequentially(" Ping #launch when done.", delay=10)
    left = frames.frame_locator("#left")
    expect(left.locator(".item")).to_have_count(4, timeout=2000)
    expect(left.locator("#note")).to_have_value(re.compile("Ping #launch when done.$"))
    for child in frames.frames[1:]:
        child.evaluate("window.scrollTo(0, 0)")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    frames.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def _side_by_side(url: str) -> str:
    return f"""<!doctype html>
<style>
  body {{ margin: 0; padding: 18px; background: #d0d5dd; display: flex; gap: 18px;
          font: 13px system-ui, sans-serif; }}
  figure {{ margin: 0; flex: 1; display: flex; flex-direction: column; gap: 6px; }}
  figcaption {{ color: #344054; }}
  iframe {{ display: block; width: 100%; height: 790px; border: 0; border-radius: 10px;
            box-shadow: 0 4px 16px rgba(16, 24, 40, .18); background: white; }}
</style>
<figure><figcaption>Window 1</figcaption><iframe id="left" src="{url}"></iframe></figure>
<figure><figcaption>Window 2</figcaption><iframe id="right" src="{url}"></iframe></figure>
"""
