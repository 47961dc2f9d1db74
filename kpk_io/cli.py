"""The `kpk-io` command: parses arguments and delegates."""

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from aiohttp import web

from kpk_io import __version__
from kpk_io.app import create_app
from kpk_io.config import ConfigError, Settings, load_settings
from kpk_io.logs import configure_logging

log = logging.getLogger("kpk_io")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kpk-io", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kpk-io {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--config", help="TOML settings file (or KPK_IO_CONFIG)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", help="port to listen on (default 8000)")
    serve.add_argument("--redis-url", help="redis://HOST:PORT/DB; none = in-memory store")
    serve.add_argument("--key-prefix", help="prefix of every Redis key (default kpk:)")
    serve.add_argument("--history", help="changes kept per room for sync (default 1000)")
    serve.add_argument("--max-rooms", help="rooms one connection may join (default 100)")
    serve.add_argument("--cors-origins", help="comma-separated origins allowed, or *")
    serve.add_argument("--log-level", help="debug, info, warning or error")
    serve.add_argument("--log-json", action="store_const", const="true", help="JSON log lines")
    serve.add_argument("--shutdown-timeout", help="seconds to drain on SIGTERM (default 10)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = vars(_parser().parse_args(argv))
    args.pop("command")
    try:
        settings = load_settings(args, os.environ)
    except ConfigError as exc:
        sys.exit(f"kpk-io: bad setting: {exc}")
    serve(settings)


def serve(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_json)
    log.info("kpk-io %s listening on http://%s:%d", __version__, settings.host, settings.port)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout,
        print=None,
        access_log=None,
    )
