"""The `kpk-io` command: parses arguments and delegates."""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from kpk_io import __version__
from kpk_io.config import HELP, SWITCHES, ConfigError, Settings, load_settings
from kpk_io.logs import configure_logging
from kpk_io.service import ListenError, run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kpk-io", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kpk-io {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service")
    for name, text in HELP.items():
        flag = "--" + name.replace("_", "-")
        if name in SWITCHES:
            serve.add_argument(flag, action="store_const", const="true", help=text)
        else:
            serve.add_argument(flag, help=text)
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
    try:
        asyncio.run(run(settings))
    except (ConfigError, ListenError) as exc:
        sys.exit(f"kpk-io: bad setting: {exc}")
