"""The README's Quick start on a stock Debian Python, which refuses `pip install` outside a
virtualenv (PEP 668): `make serve` and `make test` make .venv themselves and work in it.
(`.ci/run` runs `make test` from a fresh clone, so CI goes through .venv end to end.)"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = Path("/usr/bin/python3")
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
)


def externally_managed(python: Path) -> bool:
    if not python.exists():
        return False
    stdlib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    return Path(stdlib, "EXTERNALLY-MANAGED").exists()


@pytest.mark.skipif(not externally_managed(DEBIAN_PYTHON), reason="no PEP 668 Python here")
def test_make_installs_into_a_venv_of_its_own_where_the_system_pip_refuses(
    tmp_path: Path,
) -> None:
    checkout = tmp_path / "kpk-io"
    shutil.copytree(ROOT, checkout, ignore=_NOT_SOURCE)
    refused = _pip(DEBIAN_PYTHON, checkout)
    assert refused.returncode != 0
    assert "externally-managed-environment" in refused.stderr, "the system pip refuses"

    # What `make serve` and `make test` would run: pip and the service only from .venv.
    plan = _make("-n", "serve", "test", cwd=checkout).splitlines()
    assert f"{DEBIAN_PYTHON} -m venv .venv" in plan
    pip_lines = [line for line in plan if " pip " in line]
    assert pip_lines and all(line.startswith(".venv/bin/python -m pip ") for line in pip_lines)
    assert ".venv/bin/python -m kpk_io serve --host 127.0.0.1 --port 8000" in plan
    assert ".venv/bin/python -m pytest -q -p no:cacheprovider" in plan

    # Its first step for real (offline): the venv, whose pip installs where the system's won't.
    _make(".venv/bin/python", cwd=checkout)
    accepted = _pip(checkout / ".venv" / "bin" / "python", checkout)
    assert accepted.returncode == 0, accepted.stderr
    assert "Requirement already satisfied: pip" in accepted.stdout


def _make(*args: str, cwd: Path) -> str:
    result = subprocess.run(["make", f"PYTHON={DEBIAN_PYTHON}", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=300, check=True)
    return result.stdout


def _pip(python: Path, checkout: Path) -> subprocess.CompletedProcess[str]:
    """`pip install pip` as a dry run, offline: refused or not, and nothing changes."""
    return subprocess.run(
        [str(python), "-m", "pip", "install", "--dry-run", "--no-index", "pip"],
        cwd=checkout, capture_output=True, text=True, timeout=300, check=False,
    )
