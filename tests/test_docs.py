"""The code in README.md and docs/browser-client.md runs as written: the Python walkthrough
against a real server, the HTML pages in Chromium as pages of another origin (a Django app)
against a real server that allows that origin."""

import ast
import inspect
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import CodeType, SimpleNamespace

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from kpk_io.client import KpkClient, Room
from tests.conftest import StartKpk
from tests.polling import eventually
from tests.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BROWSER_CLIENT = ROOT / "docs" / "browser-client.md"
# Where the documents say the server is, and the template tag a Django page fills in.
SERVER_URLS = ("http://127.0.0.1:8000", "https://kpk.example")


def snippets(document: Path, language: str) -> list[str]:
    text = document.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def on_server(code: str, url: str) -> str:
    for written in SERVER_URLS:
        code = code.replace(written, url)
    return code


Line = tuple[CodeType, str | None]  # a statement, and the output the document shows for it


def repl(snippet: str) -> list[Line]:
    """A `python -m asyncio` session's lines, each with the output shown under it."""
    lines: list[Line] = []
    for line in snippet.splitlines():
        if line.startswith(">>> "):
            lines.append((_compiled(line[4:]), None))
        elif line.strip() and lines:
            lines[-1] = (lines[-1][0], line.strip())
    return lines


def _compiled(source: str) -> CodeType:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code: CodeType
    try:
        code = compile(source, "<README>", "eval", flags=flags)
    except SyntaxError:  # a statement, not an expression
        code = compile(source, "<README>", "exec", flags=flags)
    return code


def test_the_readmes_other_python_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Django view that mints tokens: its imports resolve and it renders a token."""
    monkeypatch.setenv("KPK_IO_JWT_SECRET", "s" * 32)
    (view,) = [code for code in snippets(README, "python") if not code.startswith(">>> ")]
    rendered: list[dict[str, str]] = []
    namespace: dict[str, object] = {
        "render": lambda request, template, context: rendered.append(context)
    }
    exec(compile(view, "<README>", "exec"), namespace)
    user = SimpleNamespace(pk=7, get_full_name=lambda: "Ada")
    namespace["notes_page"](SimpleNamespace(user=user), "acme", "q1", "intro")  # type: ignore[operator]
    assert rendered and rendered[0]["kpk_token"].count(".") == 2  # a JWT


async def run(lines: list[Line], namespace: dict[str, object]) -> None:
    """Run a session's lines; where the document shows an output, the result's repr is it."""
    for code, shown in lines:
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            result = await result
        if shown is not None:
            assert repr(result) == shown, shown


async def test_the_readme_walkthrough_runs_in_two_sessions(start_kpk: StartKpk) -> None:
    server = start_kpk()
    sessions = [code for code in snippets(README, "python") if code.startswith(">>> ")]
    connect, change, compare_and_set, text = (on_server(code, server.url) for code in sessions)
    printed: list[list[str]] = [[], []]
    terminals: list[dict[str, object]] = [
        {"print": lambda *args, output=output: output.append(" ".join(map(str, args)))}
        for output in printed
    ]
    try:
        for namespace in terminals:
            await run(repl(connect), namespace)
        await run(repl(change), terminals[0])
        await eventually(lambda: printed[1], what="the other session to print the change")
        assert printed[1] == ["rev 1 -> {'title': 'Q1 plan'}"]
        await run(repl(compare_and_set), terminals[0])
        await eventually(lambda: len(printed[1]) == 2, what="the compare-and-set change")
        assert printed[1][1] == "rev 2 -> {'title': 'Q1 plan, v2'}"
        await run(repl(text), terminals[0])
        other = terminals[1]["room"]
        assert isinstance(other, Room)
        await other.wait_for(lambda state: state.get("note") == "Agenda: ")
    finally:
        for namespace in terminals:
            client = namespace.get("client")
            if isinstance(client, KpkClient):
                await client.close()


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Callable[[], BrowserContext]]:
    made: list[BrowserContext] = []

    def make() -> BrowserContext:
        made.append(browser.new_context())
        return made[-1]

    yield make
    for context in made:
        context.close()


class AppServer(ThreadingHTTPServer):
    page = b""

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _AppHandler(BaseHTTPRequestHandler):
    server: AppServer

    def do_GET(self) -> None:
        # The token endpoint of the documents' examples: this server checks no tokens.
        body = b"" if self.path.startswith("/kpk-token/") else self.server.page
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def app_server() -> Iterator[AppServer]:
    """The Django app: any path answers with the page it is given. On loopback, like kpk-io,
    since Chromium lets no page of a public address reach a loopback server."""
    app = AppServer(("127.0.0.1", free_port()), _AppHandler)
    thread = threading.Thread(target=app.serve_forever, daemon=True)
    thread.start()
    yield app
    app.shutdown()
    app.server_close()
    thread.join(10)


@pytest.mark.parametrize(
    ("document", "path"),
    [(README, "/kpk/notes/acme/q1/intro/"), (BROWSER_CLIENT, "/notes/acme/q1/intro/")],
    ids=["README", "browser-client"],
)
def test_the_html_snippet_works_from_a_page_of_another_origin(
    start_kpk: StartKpk, contexts: Callable[[], BrowserContext], app_server: AppServer,
    document: Path, path: str,
) -> None:
    server = start_kpk("--cors-origins", app_server.origin)
    (snippet,) = snippets(document, "html")
    html = on_server(snippet, server.url).replace("{{ kpk_token }}", "")
    app_server.page = f"<!doctype html>{html}".encode()
    writer, reader = (contexts().new_page() for _ in range(2))
    for page in (writer, reader):
        page.goto(app_server.origin + path)
        # The status listener is on before the room is live, so it shows `live`.
        expect(page.locator("#status")).to_have_text("live", timeout=15_000)
    writer.locator("#title").fill("Q1 plan")
    expect(reader.locator("#title")).to_have_value("Q1 plan", timeout=15_000)


def test_the_token_function_snippet_runs(
    start_kpk: StartKpk, contexts: Callable[[], BrowserContext], app_server: AppServer
) -> None:
    """The fragment on token functions, with what it takes from its page around it."""
    server = start_kpk("--cors-origins", app_server.origin)
    (fragment,) = snippets(BROWSER_CLIENT, "js")
    app_server.page = f"""<!doctype html><script type="module">
      import {{ connect, join }} from "{server.url}/kpk-io/kpk-io.js";
      const url = "{server.url}", roomId = "kpk/notes/acme/q1/token";
      const client = connect(url);
      {fragment}
      window.__room = room;
    </script>""".encode()
    page = contexts().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(app_server.origin + "/notes/")
    page.wait_for_function("window.__room && window.__room.status === 'live'", timeout=15_000)
    assert not errors
