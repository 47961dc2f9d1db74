from pathlib import Path

import pytest

from kpk_io.config import ConfigError, Settings, load_settings


def test_defaults_when_nothing_is_given() -> None:
    assert load_settings({}, {}) == Settings()


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    file = tmp_path / "kpk-io.toml"
    file.write_text('port = 7001\nhost = "0.0.0.0"\nkey_prefix = "f:"\nhistory = 50\n')
    env = {"KPK_IO_CONFIG": str(file), "KPK_IO_PORT": "7002", "KPK_IO_KEY_PREFIX": "e:"}
    settings = load_settings({"port": "7003", "host": None}, env)
    assert settings.port == 7003
    assert settings.key_prefix == "e:"
    assert settings.host == "0.0.0.0"
    assert settings.history == 50


def test_values_are_parsed() -> None:
    env = {
        "KPK_IO_REDIS_URL": "redis://h:1/2",
        "KPK_IO_LOG_JSON": "yes",
        "KPK_IO_CORS_ORIGINS": "https://a.example, https://b.example",
        "KPK_IO_API_KEY": "s3cret",
        "KPK_IO_SHUTDOWN_TIMEOUT": "2.5",
    }
    settings = load_settings({}, env)
    assert settings.redis_url == "redis://h:1/2"
    assert settings.log_json is True
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.api_key == "s3cret"
    assert settings.shutdown_timeout == 2.5


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"port": "http"}, {}, "--port: expected a whole number"),
        ({}, {"KPK_IO_PORT": "70000"}, "KPK_IO_PORT: expected a whole number from 0 to 65535"),
        ({}, {"KPK_IO_REDIS_URL": "http://x"}, "KPK_IO_REDIS_URL: expected a URL"),
        ({}, {"KPK_IO_KEY_PREFIX": "a{b}"}, "KPK_IO_KEY_PREFIX: must not contain"),
        ({}, {"KPK_IO_LOG_JSON": "maybe"}, "KPK_IO_LOG_JSON: expected true or false"),
        ({}, {"KPK_IO_LOG_LEVEL": "loud"}, "KPK_IO_LOG_LEVEL: expected one of"),
        ({}, {"KPK_IO_HISTORY": "0"}, "KPK_IO_HISTORY: expected a whole number from 1"),
    ],
)
def test_bad_values_name_their_source(flags: dict[str, object], env: dict[str, str],
                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, env)


def test_bad_file_is_reported(tmp_path: Path) -> None:
    file = tmp_path / "bad.toml"
    file.write_text("port = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"config": str(file)}, {})
    file.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="unknown settings"):
        load_settings({"config": str(file)}, {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({"config": str(tmp_path / "missing.toml")}, {})


@pytest.mark.parametrize("origins", ["example.com", "https://a.example/path", "ftp://x.example"])
def test_cors_origins_must_be_origins(origins: str) -> None:
    with pytest.raises(ConfigError, match=r"KPK_IO_CORS_ORIGINS: .* is not an origin"):
        load_settings({}, {"KPK_IO_CORS_ORIGINS": origins})


def test_cors_origins_accept_origins_and_star() -> None:
    env = {"KPK_IO_CORS_ORIGINS": "*, http://localhost:8080, https://[::1]:9"}
    settings = load_settings({}, env)
    assert settings.cors_origins == ("*", "http://localhost:8080", "https://[::1]:9")


def test_trusted_proxies_must_be_networks() -> None:
    settings = load_settings({}, {"KPK_IO_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"})
    assert settings.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    with pytest.raises(ConfigError, match="KPK_IO_TRUSTED_PROXIES: 'nginx' is not an IP"):
        load_settings({}, {"KPK_IO_TRUSTED_PROXIES": "nginx"})


def test_a_jwt_secret_shorter_than_256_bits_is_accepted() -> None:
    # `kpk-io serve` warns about it at start (tests/test_auth_weak_secret.py).
    assert load_settings({}, {"KPK_IO_JWT_SECRET": "short"}).jwt_secret == "short"
    assert load_settings({}, {"KPK_IO_JWT_SECRET": "x" * 32}).jwt_secret == "x" * 32


def test_heartbeat_settings() -> None:
    assert (Settings().ping_interval, Settings().ping_timeout) == (25.0, 20.0)
    settings = load_settings({"ping_interval": "1"}, {"KPK_IO_PING_TIMEOUT": "1.5"})
    assert (settings.ping_interval, settings.ping_timeout) == (1.0, 1.5)
    with pytest.raises(ConfigError, match="--ping-interval"):
        load_settings({"ping_interval": "0"}, {})


def test_history_bytes_has_a_documented_floor_of_1024() -> None:
    assert load_settings({}, {"KPK_IO_HISTORY_BYTES": "1024"}).history_bytes == 1024
    with pytest.raises(ConfigError, match="HISTORY_BYTES: expected a whole number from 1024"):
        load_settings({}, {"KPK_IO_HISTORY_BYTES": "1023"})
