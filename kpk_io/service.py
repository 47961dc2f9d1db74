"""One `kpk-io serve` process from start to exit: bind, say where, wait for a signal, drain.

"listening" is logged only once the socket is bound, so whoever waits for that line (a
person, a test, an orchestrator's log check) can connect at once. An address that cannot be
bound is a `ListenError` naming the setting, which the command prints as one line.
"""

import asyncio
import errno
import gc
import logging
import os
import signal
import socket

from aiohttp import web

from kpk_io import __version__
from kpk_io.app import create_app, report_store
from kpk_io.config import Settings

log = logging.getLogger("kpk_io")

# The cyclic collector's thresholds. CPython's default collects the young generation every
# 700 allocations: under a burst of requests, thousands of objects are alive in flight
# (tasks, coroutines, futures, the changes themselves), and every young collection walked
# them and promoted them, which then made older collections walk them again: 17% of the
# server's CPU in the many-rooms benchmark. Every 50,000 allocations, it is 2%; garbage in
# cycles waits for at most that many allocations (the idle-capacity figure is unchanged).
GC_THRESHOLDS = (50_000, 20, 20)

access_log = logging.getLogger("kpk_io.access")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# The remote address, the request line, status, bytes, seconds taken and the browser.
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tf "%{User-Agent}i" "%{X-Forwarded-For}i"'
# Connections the kernel queues for accept(): aiohttp's 128 overflowed in a burst of
# connects (2,000/s), and each dropped SYN is retried by the client only after 1, 3, 7, 15 s
# ... (clients timed out connecting). The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096


class ListenError(Exception):
    """The address in the settings cannot be listened on; the message names the setting."""


async def run(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then drain as create_app's shutdown hooks say."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[signal.Signals] = loop.create_future()
    for sig in _STOP_SIGNALS:
        # From before the port is bound (a signal as soon as /healthz answers must drain,
        # not kill) to the end (a second signal while draining changes nothing).
        loop.add_signal_handler(sig, _settle, stop, sig)
    try:
        # Bound first: an address we cannot have is the one line said, before any other.
        sockets = bind(settings)
        app = create_app(settings)
        runner = web.AppRunner(
            app,
            access_log=access_log if settings.access_log else None,
            access_log_format=ACCESS_LOG_FORMAT,
            shutdown_timeout=settings.shutdown_timeout,
        )
        await runner.setup()
        await _listen(runner, sockets)
        await report_store(app)
        # What start-up made lives as long as the process: out of the collector's way, so
        # that its full collections do not walk it again and again.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        await _drain_on(await stop, runner, settings)
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def _drain_on(received: signal.Signals, runner: web.AppRunner, settings: Settings) -> None:
    log.info(
        "%s: stopped accepting connections; draining running requests (up to %g s)",
        received.name, settings.shutdown_timeout,
    )
    await runner.cleanup()
    log.info("drained; exiting")


def bind(settings: Settings) -> list[socket.socket]:
    """Bind every address the host names, as asyncio's create_server would; not listening
    yet. Raises ListenError."""
    try:
        found = socket.getaddrinfo(settings.host or None, settings.port,
                                   type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(_listen_failure(settings, exc)) from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, protocol, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, protocol)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # "::" means IPv6 only, as with create_server
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ListenError(_listen_failure(settings, exc)) from None
    return sockets


async def _listen(runner: web.AppRunner, sockets: list[socket.socket]) -> None:
    for sock in sockets:
        await web.SockSite(runner, sock, backlog=LISTEN_BACKLOG).start()
    for address in runner.addresses:
        host, port = address[:2]
        shown = f"[{host}]" if ":" in host else host
        log.info("kpk-io %s listening on http://%s:%d", __version__, shown, port)


def _listen_failure(settings: Settings, exc: OSError) -> str:
    where = f"{settings.host}:{settings.port}"
    reason = exc.strerror if isinstance(exc, socket.gaierror) else os.strerror(exc.errno or 0)
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return f"host: cannot listen on {where}: {settings.host!r} is no address here ({reason})"
    if exc.errno == errno.EADDRINUSE:
        return f"port: cannot listen on {where}: port {settings.port} is in use"
    if exc.errno == errno.EACCES:
        return f"port: cannot listen on {where}: port {settings.port} is not allowed ({reason})"
    return f"host, port: cannot listen on {where} ({reason})"


def _settle(future: "asyncio.Future[signal.Signals]", sig: signal.Signals) -> None:
    if not future.done():
        future.set_result(sig)
