"""The guard in front of every HTTP API endpoint: who the request's credentials name, the
JSON response (an error body with the protocol's code and its HTTP status for a refusal),
and the request's metrics."""

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from kpk_io.change import JSON
from kpk_io.commits import PublishError
from kpk_io.identity import API_KEY_IDENTITY, Identity, TokenVerifier, Unauthorized
from kpk_io.metrics import Metrics
from kpk_io.protocol import ErrorCode

log = logging.getLogger("kpk_io.api")  # the API's log lines keep one logger name, for filters

API_DISABLED = "api_disabled"
UNAUTHORIZED = "unauthorized"

_STATUS = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.INVALID_ROOM: 400,
    ErrorCode.INVALID_UPDATE: 400,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.CONFLICT: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
}

Action = Callable[[web.Request, Identity], Awaitable[dict[str, JSON]]]
Endpoint = Callable[[web.Request], Awaitable[web.Response]]


class Credentials:
    """Who a request's `Authorization: Bearer ...` names."""

    def __init__(self, api_key: str | None, verifier: TokenVerifier | None) -> None:
        self._api_key = api_key
        self._verifier = verifier

    @property
    def enabled(self) -> bool:
        return self._api_key is not None or self._verifier is not None

    def identify(self, request: web.Request) -> Identity:
        """Raises Unauthorized."""
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized("send Authorization: Bearer <API key or token>")
        # compare_digest takes as long for a near miss as for a wild guess.
        if self._api_key is not None and hmac.compare_digest(
            credential.encode(), self._api_key.encode()
        ):
            return API_KEY_IDENTITY
        if self._verifier is None:
            raise Unauthorized("the API key is not valid")
        return self._verifier.verify(credential)


class Guard:
    """Wraps each action: the credentials check, the response, and the metrics."""

    def __init__(self, credentials: Credentials, metrics: Metrics) -> None:
        self._credentials = credentials
        self._metrics = metrics

    def endpoint(self, event: str, action: Action, *, update: bool = False) -> Endpoint:
        """`action` behind the credentials, counted as `event` (and as an update, with
        `update`)."""

        async def endpoint(request: web.Request) -> web.Response:
            with self._metrics.request(event) as outcome:
                response, ack = await self._respond(request, action, update)
                outcome.of_ack(ack)
            return response

        return endpoint

    async def _respond(
        self, request: web.Request, action: Action, update: bool
    ) -> tuple[web.Response, dict[str, JSON]]:
        if not self._credentials.enabled:
            message = ("the HTTP API is off: configure an API key (KPK_IO_API_KEY) or a JWT "
                       "key (KPK_IO_JWT_SECRET, KPK_IO_JWT_PUBLIC_KEY) to use it")
            return _error(404, API_DISABLED, message), _refused(API_DISABLED)
        try:
            who = self._credentials.identify(request)
        except Unauthorized as exc:
            response = _error(401, UNAUTHORIZED, exc.message)
            response.headers["WWW-Authenticate"] = 'Bearer realm="kpk-io"'
            return response, _refused(UNAUTHORIZED)
        response, ack = await _answer(request, action, who)
        if update:
            self._metrics.count_update(ack)
        return response, ack


async def _answer(
    request: web.Request, action: Action, who: Identity
) -> tuple[web.Response, dict[str, JSON]]:
    """The response, and the outcome as an update ack (for the metrics)."""
    try:
        return web.json_response(await action(request, who)), {"ok": True}
    except PublishError as exc:
        log.info("%s %s refused: %s %s", request.method, request.path, exc.code, exc.message)
        return _refusal(exc), _refused(exc.code)
    except web.HTTPRequestEntityTooLarge:
        code, limit = ErrorCode.TOO_LARGE, request.client_max_size
        return _error(413, code, f"the body is larger than {limit} bytes"), _refused(code)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        code = ErrorCode.INTERNAL
        return _error(500, code, "internal error"), _refused(code)


def _refusal(exc: PublishError) -> web.Response:
    extra: dict[str, JSON] = {}
    if exc.rev is not None:
        extra["rev"] = exc.rev
    if exc.retry_after is not None:
        extra["retry_after"] = exc.retry_after
    response = _error(_STATUS.get(exc.code, 500), exc.code, exc.message, **extra)
    if exc.retry_after is not None:  # whole seconds, rounded up
        response.headers["Retry-After"] = str(-(-exc.retry_after // 1000))
    return response


def _refused(code: str) -> dict[str, JSON]:
    return {"ok": False, "error": code}


def _error(status: int, code: str, message: str, **extra: JSON) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)
