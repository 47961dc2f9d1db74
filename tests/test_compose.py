"""docker-compose.yml stays a stack that can run: no Docker here, so the file is parsed and
every name, mount and setting in it is checked against the repository."""

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpk_io.config import environ_settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"redis", "kpk-io", "nginx"}


def interpolate(text: str) -> str:
    """Compose's ${NAME:-default} with nothing set in the environment: the defaults."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"\$\{[A-Z0-9_]+\}", text), "every variable has a default"
    data: dict[str, Any] = yaml.safe_load(interpolate(text))
    return data


def test_the_services_and_what_they_depend_on_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    networks = set(compose["networks"])
    volumes = set(compose["volumes"])
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= SERVICES - {name}
        assert set(service["networks"]) <= networks, name
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), f"{name} mounts {source}, which is missing"
            else:
                assert source in volumes, f"{name} mounts an undeclared volume {source}"
            assert target.startswith("/")
    assert services["kpk-io"]["build"] == "."
    assert (ROOT / "Dockerfile").is_file()
    assert compose["networks"]["backend"]["internal"] is True
    assert "backend" not in services["nginx"]["networks"], "Redis stays out of nginx's reach"


def test_the_dockerfile_copies_files_that_exist() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(\S+) ", dockerfile, re.M):
        assert source == "." or (ROOT / source).exists(), source


def test_the_replicas_settings_load(compose: dict[str, Any]) -> None:
    service = compose["services"]["kpk-io"]
    environment = {key: str(value) for key, value in service["environment"].items()}
    mounts = dict(mount.split(":")[1::-1] for mount in service["volumes"])
    config = environment.pop("KPK_IO_CONFIG")
    assert config in mounts, "the settings file is the mounted one"
    environment["KPK_IO_CONFIG"] = str(ROOT / mounts[config])
    assert set(environment) - {"KPK_IO_CONFIG"} <= {
        f"KPK_IO_{name.upper()}" for name in environ_settings(environment)
    }, "every KPK_IO_ variable is a setting"

    settings = load_settings({}, environment)
    assert settings.host == "0.0.0.0"
    assert str(settings.port) in service["expose"]
    nginx_conf = (ROOT / "config" / "nginx.conf").read_text()
    assert f"server kpk-io:{settings.port} resolve;" in nginx_conf
    assert settings.redis_url == "redis://redis:6379/0"


def test_the_replicas_trust_nginx_network_as_their_proxy(compose: dict[str, Any]) -> None:
    (subnet,) = [entry["subnet"] for entry in compose["networks"]["frontend"]["ipam"]["config"]]
    network = ipaddress.ip_network(subnet)
    assert set(compose["services"]["nginx"]["networks"]) == {"frontend"}
    assert "frontend" in compose["services"]["kpk-io"]["networks"]
    trusted = compose["services"]["kpk-io"]["environment"]["KPK_IO_TRUSTED_PROXIES"]
    assert ipaddress.ip_network(trusted) == network


def test_nginx_publishes_the_port_it_listens_on(compose: dict[str, Any]) -> None:
    (published,) = compose["services"]["nginx"]["ports"]
    container_port = published.rsplit(":", 1)[1]
    nginx_conf = (ROOT / "config" / "nginx.conf").read_text()
    assert f"listen {container_port};" in nginx_conf
