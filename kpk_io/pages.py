"""The browser client, the demo and the index page: package data (kpk_io.web, which is web/
of the source tree), served from wherever the package is installed.

    /                                      index page, linking to the demo
    /kpk-io/<file>.js                      the browser client (ES modules) and, beside it,
                                           socket.io-client's published socket.io.esm.min.js
    /demo/notes/{org}/{project}/{page}     the collaborative notes demo (any such path)
    /demo/assets/<file>                    the demo's script and stylesheet
"""

from collections.abc import Awaitable, Callable
from importlib.util import find_spec
from pathlib import Path

from aiohttp import web

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _web_dir() -> Path:
    """kpk_io/web of an installed wheel or, in a checkout (and an editable install, which
    maps kpk_io.web but cannot import a folder without __init__.py), web/ beside kpk_io/."""
    spec = find_spec("kpk_io.web")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "web"


WEB_DIR = _web_dir()
CLIENT_DIR = WEB_DIR / "kpk-io"
DEMO_DIR = WEB_DIR / "demo"
DEMO_ROUTE = "/demo/notes/{org}/{project}/{page}"

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
}
# Revalidate every time (ETag/Last-Modified make that cheap), so an upgraded server never
# pairs a new page with a cached old client.
_NO_CACHE = {"Cache-Control": "no-cache"}
# Module scripts loaded by a page of another origin (a Django app) need CORS; these files are
# public and carry no credentials.
_SHARED = {**_NO_CACHE, "Access-Control-Allow-Origin": "*"}


def add_page_routes(app: web.Application) -> None:
    """Serve the index page, the browser client and the demo."""
    app.router.add_get("/", _page(WEB_DIR / "index.html"))
    app.router.add_get("/kpk-io/{name}", _files(CLIENT_DIR, {".js"}, _SHARED))
    app.router.add_get("/demo/assets/{name}", _files(DEMO_DIR, {".js", ".css", ".svg"}, _NO_CACHE))
    demo = _page(DEMO_DIR / "notes.html")
    app.router.add_get(DEMO_ROUTE, demo)
    app.router.add_get(DEMO_ROUTE + "/", demo)  # Django-style URLs end with a slash


def _page(path: Path) -> _Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        return file_response(path, _NO_CACHE)

    return serve


def _files(directory: Path, suffixes: set[str], headers: dict[str, str]) -> _Handler:
    """Serve the files of `directory` (not below it) whose names end in one of `suffixes`."""

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = directory / name
        if name.startswith(".") or Path(name).name != name or path.suffix not in suffixes:
            raise web.HTTPNotFound()
        return file_response(path, headers)

    return serve


def file_response(path: Path, headers: dict[str, str]) -> web.StreamResponse:
    if not path.is_file():
        raise web.HTTPNotFound()
    content_type = _CONTENT_TYPES.get(path.suffix, "application/octet-stream")
    return web.FileResponse(path, headers={**headers, "Content-Type": content_type})
