"""The browser client and the demo on a server that checks tokens, in headless Chromium:
the demo asks for a token, and a token function is asked again after the token expires."""

import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from kpk_io.tokens import issue
from tests.auth_keys import SECRET
from tests.conftest import StartKpk
from tests.processes import KpkServer
from tests.test_browser import LIVE_TIMEOUT, RECONNECT_TIMEOUT, expect_status, new_context

__all__ = ["new_context"]  # a fixture used here

TTL = 3  # seconds: the short-lived tokens live 2 to 3 s
# Ann's first token must outlive the steps before her expiry (two pages going live on a
# loaded machine), then expire while the test waits for it.
ANN_TTL = 15


@pytest.fixture
def kpk(start_kpk: StartKpk) -> KpkServer:
    return start_kpk(env={"KPK_IO_JWT_SECRET": SECRET, "KPK_IO_JWT_LEEWAY": "0"})


def demo_token(sub: str, ttl: int = 600) -> str:
    return issue(sub, name=sub.title(), rooms=["demo/notes/*"], ttl=ttl, key=SECRET)


def paste_token(page: Page, token: str) -> None:
    expect(page.locator("#token-form")).to_be_visible(timeout=RECONNECT_TIMEOUT)
    page.fill("#token", token)
    page.click("#use-token")


def test_the_demo_asks_for_a_token_and_shows_who_changed_what(
    kpk: KpkServer, new_context: Callable[[], BrowserContext]
) -> None:
    url = f"{kpk.url}/demo/notes/org-{uuid.uuid4().hex[:8]}/launch/plan"
    ann = new_context().new_page()
    ann.goto(url)
    expect_status(ann, "error", LIVE_TIMEOUT)
    expect(ann.locator("#token-reason")).to_contain_text("token is required")
    paste_token(ann, demo_token("ann", ttl=ANN_TTL))
    expect_status(ann, "live", LIVE_TIMEOUT)
    ann.locator("#title").press_sequentially("Plan", delay=20)

    bob = new_context().new_page()
    bob.goto(url)
    paste_token(bob, demo_token("bob"))
    expect_status(bob, "live", LIVE_TIMEOUT)
    expect(bob.locator("#title")).to_have_value("Plan", timeout=LIVE_TIMEOUT)
    ann.locator("#title").press_sequentially(" B", delay=20)
    expect(bob.locator("#by-name")).to_have_text("Ann", timeout=LIVE_TIMEOUT)

    # Ann's token expires: the server drops her connection, her reconnect with the same
    # (stale) token is refused `unauthorized`, and the page asks again.
    expect(ann.locator("#token-reason")).to_contain_text(
        "expired", timeout=RECONNECT_TIMEOUT + ANN_TTL * 1000
    )
    paste_token(ann, demo_token("ann"))
    expect_status(ann, "live", RECONNECT_TIMEOUT)
    ann.locator("#title").fill("Plan B!")
    expect(bob.locator("#title")).to_have_value("Plan B!", timeout=LIVE_TIMEOUT)


def test_a_forbidden_room_asks_for_another_token(
    kpk: KpkServer, new_context: Callable[[], BrowserContext]
) -> None:
    page = new_context().new_page()
    page.goto(f"{kpk.url}/demo/notes/acme/launch/plan")
    paste_token(page, issue("ann", rooms=["demo/notes/other/*"], ttl=600, key=SECRET))
    expect(page.locator("#token-reason")).to_contain_text("does not admit", timeout=LIVE_TIMEOUT)


CONNECT_WITH_TOKEN_FUNCTION = """async (room) => {
  const { connect } = await import("/kpk-io/kpk-io.js");
  window.__calls = 0;
  const client = connect(location.origin, {
    token: async () => { window.__calls++; return await window.freshToken(); },
  });
  window.__room = client.room(room);
  await window.__room.ready;
}"""

WATCH_WITH_TOKEN = """async ([room, token]) => {
  const { connect } = await import("/kpk-io/kpk-io.js");
  window.__by = [];
  const watched = connect(location.origin, { token }).room(room);
  watched.on("change", (change) => change.by && window.__by.push(change.by));
  await watched.ready;
}"""


def test_the_browser_client_asks_its_token_function_again_on_every_reconnect(
    kpk: KpkServer, new_context: Callable[[], BrowserContext]
) -> None:
    room = f"b/{uuid.uuid4().hex[:8]}"
    page = new_context().new_page()
    page.expose_function(
        "freshToken", lambda: issue("carol", name="Carol", rooms=["b/*"], ttl=TTL, key=SECRET)
    )
    page.goto(kpk.url + "/")
    page.evaluate(CONNECT_WITH_TOKEN_FUNCTION, room)
    watcher = new_context().new_page()
    watcher.goto(kpk.url + "/")
    watcher.evaluate(WATCH_WITH_TOKEN, [room, issue("w", rooms=["b/*"], ttl=600, key=SECRET)])
    # Two expiries, two reconnects, each with a token fresh from the function.
    page.wait_for_function("() => window.__calls >= 3 && window.__room.status === 'live'",
                           timeout=30_000)
    page.evaluate("() => { window.__room.set('after', 1); return window.__room.flush(); }")
    watcher.wait_for_function("() => window.__by.length >= 1", timeout=LIVE_TIMEOUT)
    assert watcher.evaluate("window.__by") == [{"user": "carol", "name": "Carol"}]
