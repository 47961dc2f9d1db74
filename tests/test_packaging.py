"""The Python package as a user installs it: a wheel built from this checkout, installed into
a fresh virtualenv, must serve the browser client, the demo and the index page by itself."""

import shutil
import site
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
# What the build reads; the rest of a checkout (node_modules, .venv, caches) stays out.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel` of a copy of the checkout, without network (no build isolation)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(work / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    (built,) = (work / "dist").glob("kpk_io-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed. Its dependencies come from this
    interpreter's site-packages through a .pth line, so nothing is downloaded."""
    path = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   timeout=120)
    python = path / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--disable-pip-version-check", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    # Appended after the venv's own site-packages: the wheel's kpk_io comes first.
    Path(purelib, "_kpk_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return path


@pytest.fixture
def installed_server(venv: Path, tmp_path: Path) -> Iterator[str]:
    """`kpk-io serve` from the venv's console script, run outside the checkout."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(venv / "bin" / "kpk-io"), "serve", "--port", str(port)],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KPK_IO_ADMIN_USER": "ops",
                 "KPK_IO_ADMIN_PASSWORD": "secret"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url, process), timeout=30, what="the installed kpk-io")
        yield url
    finally:
        process.kill()
        process.wait(10)


def _answers(url: str, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "kpk-io exited early"
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def fetch(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers["Content-Type"], response.read()


def test_the_wheel_holds_the_browser_files_and_nothing_else_of_web(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {str(path.relative_to(ROOT)) for path in (ROOT / "kpk_io").rglob("*.py")}
    assert sources <= names
    assert {"kpk_io/store/commit.lua", "kpk_io/py.typed"} <= names
    browser = {
        "kpk_io/web/" + str(path.relative_to(WEB))
        for pattern in ("index.html", "kpk-io/*.js", "demo/*", "admin/**/*")
        for path in WEB.glob(pattern)
        if path.is_file()
    }
    assert "kpk_io/web/kpk-io/socket.io.esm.min.js" in browser
    assert {"kpk_io/web/kpk-io/yjs.esm.min.js", "kpk_io/web/kpk-io/text.js"} <= browser
    assert "kpk_io/web/admin/mdi/fonts/materialdesignicons-webfont.woff2" in browser
    assert browser <= names
    web_files = {name for name in names if name.startswith("kpk_io/web/")}
    assert web_files == browser, "only what a browser loads"


def test_an_installed_wheel_serves_the_client_the_demo_and_the_index(
    venv: Path, installed_server: str
) -> None:
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import kpk_io.pages as p; print(p.WEB_DIR)"],
        cwd=venv, check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where

    pages = {
        "/": WEB / "index.html",
        "/kpk-io/kpk-io.js": WEB / "kpk-io" / "kpk-io.js",
        "/kpk-io/socket.io.esm.min.js": WEB / "kpk-io" / "socket.io.esm.min.js",
        "/demo/notes/acme/launch/plan": WEB / "demo" / "notes.html",
        "/demo/assets/notes.js": WEB / "demo" / "notes.js",
        "/admin/": WEB / "admin" / "index.html",
        "/admin/kpk-admin.js": WEB / "admin" / "kpk-admin.js",
        "/admin/mdi/fonts/materialdesignicons-webfont.woff2":
            WEB / "admin" / "mdi" / "fonts" / "materialdesignicons-webfont.woff2",
    }
    for path, source in pages.items():
        content_type, body = fetch(installed_server + path)
        assert body == source.read_bytes(), path
        assert content_type.startswith(("text/html", "text/javascript", "font/")), (
            path, content_type
        )
