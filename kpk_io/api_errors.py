"""The HTTP API's answer to a request no route of it takes: a path under /api/ that is not
one of its endpoints (a room ID with an unencoded `/`, `/api/rooms/org/a/z2`, is one), or a
method an endpoint does not have. aiohttp answers those with a plain-text page; every answer
of the API is its JSON error body, `{error, message}`, so clients parse one shape."""

from collections.abc import Awaitable

from aiohttp import web
from aiohttp.typedefs import Handler

from kpk_io.protocol import ErrorCode

API_PREFIX = "/api/"
_NOT_FOUND = (
    "no such endpoint: the API has /api/rooms and /api/rooms/{room}, the room ID "
    "percent-encoded as one path segment (encodeURIComponent: org/a/z2 is org%2Fa%2Fz2)"
)


@web.middleware
def api_errors(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Turn aiohttp's 404 and 405 for paths under /api/ into the API's error body.

    Not a coroutine itself: outside the API it hands back the handler's own awaitable, so no
    frame of this middleware stays on the stack of every open WebSocket connection."""
    if not _in_api(request):
        return handler(request)
    return _api_answer(request, handler)


async def _api_answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _error(404, _NOT_FOUND)
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        response = _error(405, f"{request.method} is not allowed here; allowed: {allowed}")
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return response


def _in_api(request: web.Request) -> bool:
    return request.path == API_PREFIX.rstrip("/") or request.path.startswith(API_PREFIX)


def _error(status: int, message: str) -> web.Response:
    body = {"error": ErrorCode.INVALID_REQUEST.value, "message": message}
    return web.json_response(body, status=status)
