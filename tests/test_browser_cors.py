"""A page of another origin joining kpk-io in Chromium: refused by the same-origin check
unless kpk-io allows that origin, and then `join()` rejects with a clear error instead of
waiting for ever."""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.conftest import StartKpk

ROOM = "kpk/notes/acme/q1/cors"
# Joins from the page; never waits more than 20 s, so a join that hangs is an answer too.
JOIN = """async ([url, room]) => {
  const { join } = await import("/kpk-io/kpk-io.js");
  const started = Date.now();
  const never = new Promise((resolve) => setTimeout(() => resolve("hung"), 20000));
  const joined = join(url, room, { connectTimeoutMs: 3000 }).then(
    async (joined) => { await joined.close(); return "joined"; },
    (error) => ({ code: error.code, message: error.message }),
  );
  const outcome = await Promise.race([joined, never]);
  return { outcome, seconds: (Date.now() - started) / 1000 };
}"""


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def test_a_join_from_a_page_of_another_origin_rejects_after_the_connect_timeout(
    start_kpk: StartKpk, page: Page
) -> None:
    app, kpk = start_kpk(), start_kpk()  # the page's origin, and a kpk-io that does not allow it
    page.goto(f"{app.url}/")
    answer = page.evaluate(JOIN, [kpk.url, ROOM])
    outcome = answer["outcome"]
    assert isinstance(outcome, dict), answer
    assert outcome["code"] == "unreachable"
    assert f"could not connect to {kpk.url} in 3 s" in outcome["message"]
    assert f"start kpk-io with --cors-origins {app.url}" in outcome["message"]
    assert 3 <= answer["seconds"] < 15


def test_the_same_join_works_once_kpk_io_allows_the_origin(
    start_kpk: StartKpk, page: Page
) -> None:
    app = start_kpk()
    kpk = start_kpk("--cors-origins", app.url)
    page.goto(f"{app.url}/")
    assert page.evaluate(JOIN, [kpk.url, ROOM])["outcome"] == "joined"
