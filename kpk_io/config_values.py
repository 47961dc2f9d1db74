"""Parsers of setting values: each takes a raw value (a flag's or variable's string, or a
TOML value) and returns the typed value or raises ValueError saying what is expected.
kpk_io.config adds where the value came from."""

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_REDIS_SCHEMES = {"redis", "rediss", "unix", "valkey", "valkeys"}
_LOG_LEVELS = {"debug", "info", "warning", "error"}


def text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def optional_text(value: object) -> str | None:
    return text(value) or None


def int_between(low: int, high: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        try:
            number = int(value) if isinstance(value, str | int) else None
        except ValueError:
            number = None
        if isinstance(value, bool) or number is None or not low <= number <= high:
            raise ValueError(f"expected a whole number from {low} to {high}")
        return number

    return parse


def compression(value: object) -> int:
    """`off` (or 0): no permessage-deflate; N: compress WebSocket messages above N bytes."""
    if value in ("off", "false", False):
        return 0
    return int_between(0, 1 << 30)(value)


def rate(value: object) -> float:
    try:
        number = float(value) if isinstance(value, str | int | float) else -1.0
    except ValueError:
        number = -1.0
    if isinstance(value, bool) or not 0 <= number <= 1_000_000:
        raise ValueError("expected a number per second from 0 (off) to 1000000")
    return number


def seconds(value: object) -> float:
    try:
        number = float(value) if isinstance(value, str | int | float) else -1.0
    except ValueError:
        number = -1.0
    if isinstance(value, bool) or not 0 < number <= 300:
        raise ValueError("expected a number of seconds above 0 and at most 300")
    return number


def boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    word = text(value).strip().lower()
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def redis_url(value: object) -> str | None:
    url = optional_text(value)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in _REDIS_SCHEMES:
        raise ValueError(f"expected a URL with scheme {', '.join(sorted(_REDIS_SCHEMES))}")
    try:
        parts.port  # noqa: B018 (parsed on access: raises for a port that is no number)
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None
    database = parts.path.lstrip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        raise ValueError("the database (the path) must be a number, as in /0")
    return url


def key_prefix(value: object) -> str:
    prefix = text(value)
    if "{" in prefix or "}" in prefix:
        raise ValueError("must not contain { or }: they would break Redis Cluster hash tags")
    return prefix


def _text_list(value: object, what: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"expected a comma-separated list of {what}")
    return tuple(item.strip() for item in items if item.strip())


_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


def origins(value: object) -> tuple[str, ...]:
    origins = _text_list(value, "origins, or *")
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ValueError(
                f"{origin!r} is not an origin: expected scheme://host[:port] "
                "(such as https://app.example.com), or *"
            )
    return origins


def networks(value: object) -> tuple[str, ...]:
    networks = _text_list(value, "addresses or CIDRs")
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{network!r} is not an IP address or CIDR") from None
    return networks


def readable_file(value: object) -> str | None:
    path = optional_text(value)
    if path is not None and not Path(path).is_file():
        raise ValueError("expected the path of a readable PEM file")
    return path


def log_level(value: object) -> str:
    level = text(value).lower()
    if level not in _LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(sorted(_LOG_LEVELS))}")
    return level


# The parser of each field of kpk_io.config.Settings, by name.
PARSERS: dict[str, Callable[[object], Any]] = {
    "host": text,
    "port": int_between(0, 65535),
    "redis_url": redis_url,
    "key_prefix": key_prefix,
    "history": int_between(1, 100_000),
    "max_rooms": int_between(1, 100_000),
    "cors_origins": origins,
    "api_key": optional_text,
    "log_level": log_level,
    "log_json": boolean,
    "access_log": boolean,
    "shutdown_timeout": seconds,
    "ping_interval": seconds,
    "ws_compression": compression,
    "max_buffered_bytes": int_between(16 * 1024, 1 << 30),
    "ping_timeout": seconds,
    "room_ttl": int_between(0, 36_500),
    "history_bytes": int_between(1024, 1 << 40),
    "jwt_secret": optional_text,
    "jwt_public_key": readable_file,
    "jwt_leeway": int_between(0, 3600),
    "jwt_audience": optional_text,
    "jwt_issuer": optional_text,
    "max_payload": int_between(1024, 1 << 30),
    "max_update_bytes": int_between(64, 1 << 30),
    "max_state_bytes": int_between(64, 1 << 30),
    "max_fields": int_between(1, 1_000_000),
    "max_field_name": int_between(1, 65_536),
    "max_depth": int_between(1, 64),
    "rate_limit": rate,
    "rate_burst": int_between(1, 1_000_000),
    "join_rate": rate,
    "join_burst": int_between(1, 1_000_000),
    "signal_rate": rate,
    "signal_burst": int_between(1, 1_000_000),
    "presence_ttl": seconds,
    "max_connections_per_address": int_between(0, 1_000_000),
    "trusted_proxies": networks,
    "admin_user": optional_text,
    "admin_password": optional_text,
}
