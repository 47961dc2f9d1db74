"""The browser client as an npm package (web/kpk-io): `npm pack` builds the tarball a bundling
front end installs, with TypeScript declarations generated from the JSDoc; tsc checks a
front end's use of it (web/test-types/consumer.ts) against the packed declarations.
Offline: everything comes from web/node_modules (npm ci)."""

import json
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
PACKAGE = WEB / "kpk-io"
TSC = WEB / "node_modules" / ".bin" / "tsc"
VENDORED = "socket.io.esm.min.js"
YJS = "yjs.esm.min.js"  # Yjs and lib0 in one module; a bundler takes the app's own yjs instead


def run(*command: str, cwd: Path) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=180,
                            check=False)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    assert TSC.exists(), "run: cd web && npm ci"
    npm = shutil.which("npm")
    assert npm, "npm is needed (apt-get install npm)"
    destination = tmp_path_factory.mktemp("pack")
    out = run(npm, "pack", "--offline", "--json", "--pack-destination", str(destination),
              cwd=PACKAGE)
    # The prepack script's banner, if shown, comes before the JSON.
    start = 0 if out.startswith("[") else out.index("\n[") + 1
    (packed,) = json.loads(out[start:])
    return destination / packed["filename"], sorted(entry["path"] for entry in packed["files"])


def test_the_tarball_holds_the_client_and_its_declarations(
    tarball: tuple[Path, list[str]],
) -> None:
    _, files = tarball
    scripts = sorted(path.name for path in PACKAGE.glob("*.js"))
    declarations = sorted(
        f"types/{name.removesuffix('.js')}.d.ts" for name in scripts if name not in (VENDORED, YJS)
    )
    assert VENDORED in scripts and YJS in scripts and "kpk-io.js" in scripts
    assert files == sorted(["README.md", "package.json", *scripts, *declarations])


def test_the_package_names_its_entry_types_and_dependency() -> None:
    package = json.loads((PACKAGE / "package.json").read_text())
    pinned = json.loads((WEB / "package.json").read_text())["devDependencies"]["socket.io-client"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert package["version"] == version, "the npm package and the Python package move together"
    assert package["type"] == "module"
    assert package["exports"]["."] == {"types": "./types/kpk-io.d.ts", "default": "./kpk-io.js"}
    assert package["dependencies"] == {"socket.io-client": f"^{pinned}"}
    assert package["browser"] == {f"./{VENDORED}": "socket.io-client", f"./{YJS}": "yjs"}
    # One copy of Yjs in an app that has its own (editor bindings): a peer, never bundled twice.
    yjs = json.loads((WEB / "package.json").read_text())["devDependencies"]["yjs"]
    assert package["peerDependencies"] == {"yjs": f"^{yjs}"}


def test_a_front_end_type_checks_and_imports_the_packed_package(
    tarball: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, _ = tarball
    installed = tmp_path / "node_modules" / "kpk-io"
    installed.mkdir(parents=True)
    with tarfile.open(path) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    shutil.copytree(tmp_path / "unpacked" / "package", installed, dirs_exist_ok=True)
    for dependency in ("socket.io-client", "yjs", "lib0"):
        (tmp_path / "node_modules" / dependency).symlink_to(WEB / "node_modules" / dependency)
    for name in ("consumer.ts", "tsconfig.json"):
        shutil.copy(WEB / "test-types" / name, tmp_path / name)

    run(str(TSC), "-p", "tsconfig.json", cwd=tmp_path)
    node = shutil.which("node")
    assert node
    out = run(node, "--input-type=module", "-e",
              "import { roomFromPath, KpkError } from 'kpk-io';"
              "console.log(roomFromPath('/notes/:org/:page', '/notes/acme/q1/'),"
              " typeof KpkError)",
              cwd=tmp_path)
    assert out.split() == ["notes/acme/q1", "function"]
