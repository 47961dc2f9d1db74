"""Settings: the only reader of KPK_IO_* variables and of the TOML file.

Precedence: command-line flags, then KPK_IO_* environment variables, then the TOML file
(`--config` or KPK_IO_CONFIG), then defaults. Every value is checked at start; a bad one
stops the process with a message naming where it came from.
"""

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kpk_io.store.base import DEFAULT_HISTORY
from kpk_io.store.redis import DEFAULT_PREFIX

ENV_PREFIX = "KPK_IO_"
_REDIS_SCHEMES = {"redis", "rediss", "unix", "valkey", "valkeys"}
_LOG_LEVELS = {"debug", "info", "warning", "error"}


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
    shutdown_timeout: float = 10.0


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _optional_text(value: object) -> str | None:
    return _text(value) or None


def _int_between(low: int, high: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        try:
            number = int(value) if isinstance(value, str | int) else None
        except ValueError:
            number = None
        if isinstance(value, bool) or number is None or not low <= number <= high:
            raise ValueError(f"expected a whole number from {low} to {high}")
        return number

    return parse


def _seconds(value: object) -> float:
    try:
        number = float(value) if isinstance(value, str | int | float) else -1.0
    except ValueError:
        number = -1.0
    if isinstance(value, bool) or not 0 < number <= 300:
        raise ValueError("expected a number of seconds above 0 and at most 300")
    return number


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _redis_url(value: object) -> str | None:
    url = _optional_text(value)
    if url is not None and urlsplit(url).scheme not in _REDIS_SCHEMES:
        raise ValueError(f"expected a URL with scheme {', '.join(sorted(_REDIS_SCHEMES))}")
    return url


def _key_prefix(value: object) -> str:
    prefix = _text(value)
    if "{" in prefix or "}" in prefix:
        raise ValueError("must not contain { or }: they would break Redis Cluster hash tags")
    return prefix


def _origins(value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("expected a comma-separated list of origins, or *")
    return tuple(item.strip() for item in items if item.strip())


def _log_level(value: object) -> str:
    level = _text(value).lower()
    if level not in _LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(sorted(_LOG_LEVELS))}")
    return level


_PARSERS: dict[str, Callable[[object], Any]] = {
    "host": _text,
    "port": _int_between(0, 65535),
    "redis_url": _redis_url,
    "key_prefix": _key_prefix,
    "history": _int_between(1, 100_000),
    "max_rooms": _int_between(1, 100_000),
    "cors_origins": _origins,
    "api_key": _optional_text,
    "log_level": _log_level,
    "log_json": _bool,
    "shutdown_timeout": _seconds,
}


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
                    values[field.name] = _PARSERS[field.name](raw)
                except ValueError as exc:
                    raise ConfigError(f"{label(field.name)}: {exc}; got {raw!r}") from None
                break
    return Settings(**values)


def environ_settings(environ: Mapping[str, str]) -> dict[str, object]:
    """The settings given as KPK_IO_* variables."""
    found: dict[str, object] = {}
    for name in _PARSERS:
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
    unknown = sorted(set(data) - set(_PARSERS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown settings {unknown}")
    return data
