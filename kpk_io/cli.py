"""The `kpk-io` command: parses arguments and delegates."""

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from kpk_io import __version__
from kpk_io.config import HELP, SWITCHES, ConfigError, Settings, load_settings
from kpk_io.logs import configure_logging
from kpk_io.service import ListenError, run
from kpk_io.tokens import issue

Command = Callable[[dict[str, Any]], None]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kpk-io", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kpk-io {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service")
    serve.set_defaults(run=_serve_command)
    for name, text in HELP.items():
        flag = "--" + name.replace("_", "-")
        if name in SWITCHES:
            serve.add_argument(flag, action="store_const", const="true", help=text)
        else:
            serve.add_argument(flag, help=text)
    token = commands.add_parser(
        "token",
        help="print a JWT signed with the configured key (KPK_IO_JWT_SECRET, or the PEM file "
        "KPK_IO_JWT_PRIVATE_KEY)",
    )
    token.set_defaults(run=_token_command)
    token.add_argument("--sub", required=True, help="the user id")
    token.add_argument("--name", help="the user's display name (shown as `by` on changes)")
    token.add_argument("--rooms", default="", help="comma-separated patterns to join and write")
    token.add_argument("--read-rooms", default="", help="comma-separated patterns to read")
    token.add_argument("--ttl", type=int, default=3600, help="seconds valid (default 3600)")
    token.add_argument("--config", help="TOML settings file (or KPK_IO_CONFIG)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = vars(_parser().parse_args(argv))
    args.pop("command")
    command: Command = args.pop("run")
    command(args)


def _serve_command(args: dict[str, Any]) -> None:
    try:
        settings = load_settings(args, os.environ)
    except ConfigError as exc:
        sys.exit(f"kpk-io: bad setting: {exc}")
    serve(settings)


def _token_command(args: dict[str, Any]) -> None:
    try:
        settings = load_settings({"config": args["config"]}, os.environ)
        token = issue(
            args["sub"],
            name=args["name"],
            rooms=_patterns(args["rooms"]),
            read_rooms=_patterns(args["read_rooms"]),
            ttl=args["ttl"],
            key=settings.jwt_secret,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
    except (ValueError, OSError) as exc:
        sys.exit(f"kpk-io token: {exc}")
    print(token)


def _patterns(text: str) -> list[str]:
    return [pattern.strip() for pattern in text.split(",") if pattern.strip()]


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop's when it is installed (the `speed` extra; the Docker image has it), else
    asyncio's."""
    try:
        import uvloop  # noqa: PLC0415 (optional)
    except ImportError:
        return asyncio.run
    return uvloop.run


def serve(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_json)
    try:
        _event_loop_runner()(run(settings))
    except (ConfigError, ListenError) as exc:
        sys.exit(f"kpk-io: bad setting: {exc}")
