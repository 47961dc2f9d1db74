"""Settings: the only reader of KPK_IO_* variables and of the TOML file.

Precedence: command-line flags, then KPK_IO_* environment variables, then the TOML file
(`--config` or KPK_IO_CONFIG), then defaults. Every value is checked at start; a bad one
stops the process with a message naming where it came from.
"""

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kpk_io.config_values import PARSERS, optional_text, readable_file
from kpk_io.store.base import DEFAULT_HISTORY, DEFAULT_HISTORY_BYTES
from kpk_io.store.redis import DEFAULT_PREFIX

ENV_PREFIX = "KPK_IO_"


class ConfigError(ValueError):
    """A setting has a bad value; the message says which, where from, and what is expected."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = None
    key_prefix: str = DEFAULT_PREFIX
    history: int = DEFAULT_HISTORY
    max_rooms: int = 100
    cors_origins: tuple[str, ...] = ()
    api_key: str | None = None
    log_level: str = "info"
    log_json: bool = False
    access_log: bool = False
    shutdown_timeout: float = 10.0
    # Engine.IO heartbeat: a client that answers no ping within ping_timeout is closed.
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    # Speed and memory (docs/performance.md).
    ws_compression: int = 0  # bytes above which a WebSocket message is compressed; 0 = never
    max_buffered_bytes: int = 1024 * 1024  # per connection, before its rooms catch up later
    # Retention and history bounds (reliability).
    room_ttl: int = 0  # days without a change or a join before a room expires; 0 = never
    history_bytes: int = DEFAULT_HISTORY_BYTES
    # Identity: auth is on when a JWT key is set.
    jwt_secret: str | None = None
    jwt_public_key: str | None = None  # path of a PEM file (RS256 or ES256)
    jwt_leeway: int = 30
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    # Limits.
    max_payload: int = 1024 * 1024
    max_update_bytes: int = 256 * 1024
    max_state_bytes: int = 1024 * 1024
    max_fields: int = 1000
    max_field_name: int = 256
    max_depth: int = 32
    rate_limit: float = 50.0  # updates per second per connection; 0 = off
    rate_burst: int = 100
    join_rate: float = 20.0  # joins, leaves and syncs per second per connection; 0 = off
    join_burst: int = 200
    signal_rate: float = 30.0  # signals per second per connection; 0 = off
    signal_burst: int = 60
    presence_ttl: float = 30.0  # seconds within which a dead node's members disappear
    max_connections_per_address: int = 0  # 0 = unlimited
    trusted_proxies: tuple[str, ...] = ()  # addresses or CIDRs whose X-Forwarded-For is used
    # The Socket.IO Admin UI at /admin/: on only when both are set.
    admin_user: str | None = None
    admin_password: str | None = None


def redact_url(url: str) -> str:
    """`url` with its password, if it has one, replaced by ***: fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


# RFC 7518: an HS256 key should be at least as long as the hash (256 bits). A shorter one is
# accepted (tests and demos use short ones) and `kpk-io serve` warns at start (app.py).
MIN_JWT_SECRET_BYTES = 32


def weak_jwt_secret(secret: str | None) -> bool:
    """Whether `secret` is shorter than RFC 7518 recommends for HS256."""
    return secret is not None and len(secret.encode()) < MIN_JWT_SECRET_BYTES


# One line of `kpk-io serve --help` per setting; the flag is --name-with-dashes.
HELP: dict[str, str] = {
    "config": "TOML settings file (or KPK_IO_CONFIG)",
    "host": "address to listen on (default 127.0.0.1)",
    "port": "port to listen on (default 8000)",
    "redis_url": "redis://[:PASSWORD@]HOST:PORT/DB or rediss://; none = in-memory store",
    "key_prefix": "prefix of every Redis key (default kpk:)",
    "history": "changes kept per room for sync (default 1000)",
    "max_rooms": "rooms one connection may join (default 100)",
    "cors_origins": "comma-separated origins (scheme://host[:port]) allowed, or *",
    "api_key": "bearer key of the HTTP API (prefer KPK_IO_API_KEY)",
    "log_level": "debug, info, warning or error",
    "log_json": "JSON log lines",
    "access_log": "log every HTTP request",
    "shutdown_timeout": "seconds to drain on SIGTERM (default 10)",
    "ping_interval": "seconds between Engine.IO pings to each client (default 25)",
    "ws_compression": "WebSocket permessage-deflate: off (default) or the bytes above which a "
    "message is compressed",
    "max_buffered_bytes": "bytes waiting to be sent to one connection past which its rooms' "
    "changes are held back and replaced by one catch-up of the whole state (default 1 MiB)",
    "ping_timeout": "seconds a client has to answer a ping before it is closed (default 20)",
    "room_ttl": "days after which a room with no change and no join expires (default 0 = never)",
    "history_bytes": "bytes of changes kept per room for sync (at least 1024; default 8 MiB)",
    "jwt_secret": "HS256 secret: every connection must present a JWT (prefer the variable)",
    "jwt_public_key": "PEM file of the RS256/ES256 public key that verifies JWTs",
    "jwt_leeway": "seconds of clock skew allowed on exp/nbf (default 30)",
    "jwt_audience": "required aud claim",
    "jwt_issuer": "required iss claim",
    "max_payload": "bytes of one Socket.IO message; larger closes the connection (default 1 MiB)",
    "max_update_bytes": "encoded bytes of one update's values (default 256 KiB)",
    "max_state_bytes": "encoded bytes of a room's whole state (default 1 MiB)",
    "max_fields": "fields per room (default 1000)",
    "max_field_name": "characters of a field name (default 256)",
    "max_depth": "nesting of a field's value (default 32)",
    "rate_limit": "updates per second per connection (default 50; 0 = off)",
    "rate_burst": "burst of updates per connection (default 100)",
    "join_rate": "joins, leaves and syncs per second per connection (default 20; 0 = off)",
    "join_burst": "burst of joins, leaves and syncs (default 200)",
    "signal_rate": "signals per second per connection (default 30; 0 = off)",
    "signal_burst": "burst of signals per connection (default 60)",
    "presence_ttl": "seconds within which the members of a dead node disappear (default 30)",
    "max_connections_per_address": "connections per client address (default 0 = unlimited)",
    "trusted_proxies": "comma-separated proxy addresses or CIDRs whose X-Forwarded-For counts",
    "admin_user": "Socket.IO Admin UI user (with --admin-password turns /admin/ on)",
    "admin_password": "Socket.IO Admin UI password (prefer the variable)",
}

# Settings whose values an error message must not repeat.
_SECRETS = frozenset({"api_key", "jwt_secret", "admin_password"})

# Settings given on the command line as switches (no value).
SWITCHES = frozenset({"log_json", "access_log"})


def load_settings(
    flags: Mapping[str, object],
    environ: Mapping[str, str],
) -> Settings:
    """Merge the sources in precedence order; a flag whose value is None was not given."""
    path = flags.get("config") or environ.get(f"{ENV_PREFIX}CONFIG")
    layers: list[tuple[Callable[[str], str], Mapping[str, object]]] = [
        (lambda name: "--" + name.replace("_", "-"), flags),
        (lambda name: ENV_PREFIX + name.upper(), environ_settings(environ)),
    ]
    if path:
        layers.append((lambda name: f"{path}: {name}", _from_toml(str(path))))
    values: dict[str, Any] = {}
    for field in fields(Settings):
        for label, layer in layers:
            raw = layer.get(field.name)
            if raw is not None:
                try:
                    values[field.name] = PARSERS[field.name](raw)
                except ValueError as exc:
                    shown = _shown(field.name, raw)
                    raise ConfigError(f"{label(field.name)}: {exc}; got {shown}") from None
                break
    _check_admin(values)
    return Settings(**values)


def _check_admin(values: Mapping[str, Any]) -> None:
    """The admin view needs both credentials: one alone is a mistake, not a default."""
    given = [name for name in ("admin_user", "admin_password") if values.get(name)]
    if len(given) == 1:
        missing = ENV_PREFIX + ({"admin_user", "admin_password"} - set(given)).pop().upper()
        raise ConfigError(f"{ENV_PREFIX}{given[0].upper()} is set but {missing} is not: "
                          "the admin view needs both (or neither, to stay off)")


def _shown(name: str, raw: object) -> str:
    """How a bad value appears in the error: secrets never, a Redis URL without password."""
    if name in _SECRETS:
        return "(a secret, not shown)"
    if name == "redis_url" and isinstance(raw, str):
        return repr(redact_url(raw))
    return repr(raw)


def environ_settings(environ: Mapping[str, str]) -> dict[str, object]:
    """The settings given as KPK_IO_* variables."""
    found: dict[str, object] = {}
    for name in PARSERS:
        key = f"{ENV_PREFIX}{name.upper()}"
        if key in environ:
            found[name] = environ[key]
    return found


def _from_toml(path: str) -> dict[str, object]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(PARSERS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown settings {unknown}")
    return data


@dataclass(frozen=True)
class SigningSettings:
    """What kpk_io.tokens signs with when its caller names no key: KPK_IO_JWT_SECRET, or the
    PEM private key file KPK_IO_JWT_PRIVATE_KEY; KPK_IO_JWT_AUDIENCE and KPK_IO_JWT_ISSUER."""

    secret: str | None = None
    private_key: str | None = None
    audience: str | None = None
    issuer: str | None = None


def signing_settings(
    environ: Mapping[str, str] | None = None, *, keys: bool = True
) -> SigningSettings:
    """The SigningSettings of `environ` (default: this process's environment); without
    `keys`, the audience and issuer only (for a caller that brings its own key, which a bad
    KPK_IO_JWT_PRIVATE_KEY must not stop). Raises ConfigError for a bad value."""
    env = os.environ if environ is None else environ
    parsers = {
        "audience": ("JWT_AUDIENCE", optional_text),
        "issuer": ("JWT_ISSUER", optional_text),
    }
    if keys:
        parsers["secret"] = ("JWT_SECRET", optional_text)
        parsers["private_key"] = ("JWT_PRIVATE_KEY", readable_file)
    values: dict[str, str | None] = {}
    for name, (variable, parse) in parsers.items():
        raw = env.get(ENV_PREFIX + variable)
        if raw is not None:
            try:
                values[name] = parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{ENV_PREFIX}{variable}: {exc}") from None
    return SigningSettings(**values)
