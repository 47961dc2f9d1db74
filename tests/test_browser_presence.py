"""The notes demo's presence and typing indicator in headless Chromium, with the two pages
on two nodes of one Redis."""

from collections.abc import Callable

import socketio
from playwright.sync_api import BrowserContext, Page, expect

from kpk_io.broadcast import socketio_channel
from kpk_io.rooms import sio_room
from tests.conftest import StartKpk
from tests.processes import RedisServer
from tests.test_browser import (  # noqa: F401 (fixtures)
    LIVE_TIMEOUT,
    new_context,
    notes_path,
    open_demo,
)


def test_two_demo_pages_see_each_other_and_each_others_typing(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str,
    new_context: Callable[[], BrowserContext], notes_path: str,  # noqa: F811
) -> None:
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    first, second = start_kpk(*flags), start_kpk(*flags)
    alice = open_demo(new_context(), first.url + notes_path)
    bob = open_demo(new_context(), second.url + notes_path)
    for page in (alice, bob):
        expect(page.locator("#people .person")).to_have_count(2, timeout=LIVE_TIMEOUT)
        expect(page.locator("#people .person.me")).to_have_count(1)
    alice_id = alice.evaluate("window.__kpk.room.me.id")
    alice_name = alice.evaluate("window.__kpk.room.me.meta.guest")
    badge = bob.locator(f'#people .person[data-id="{alice_id}"]')
    expect(badge).to_have_attribute("data-name", alice_name)
    expect(badge).to_have_text(alice_name.split()[0][0] + alice_name.split()[-1][0])

    alice.locator("#note").press_sequentially("Ship it on Monday", delay=40)
    typist = bob.locator(f'#typing .typist[data-id="{alice_id}"]')
    expect(typist).to_contain_text(f"{alice_name} is typing in the note", timeout=5000)
    expect(badge).to_have_class("person editing", timeout=5000)  # her meta: in the note
    expect(alice.locator("#typing .typist")).to_have_count(0)  # never her own signals
    expect(typist).to_have_count(0, timeout=10_000)  # the indicator fades once she stops

    # Django code that emits through python-socketio's own (blocking) RedisManager reaches
    # the page's custom event handler.
    alice.evaluate("""() => {
      window.__notices = [];
      window.__kpk.client.on("notice", (body) => window.__notices.push(body));
    }""")
    emitter = socketio.RedisManager(
        redis_server.url, channel=socketio_channel(key_prefix), write_only=True
    )
    emitter.emit("notice", {"text": "deploy at 5"}, room=sio_room(alice_room(alice)))
    alice.wait_for_function("window.__notices.length === 1", timeout=10_000)
    assert alice.evaluate("window.__notices") == [{"text": "deploy at 5"}]

    bob.close()
    expect(alice.locator("#people .person")).to_have_count(1, timeout=LIVE_TIMEOUT)


def alice_room(page: Page) -> str:
    room: str = page.evaluate("window.__kpk.room.id")
    return room
