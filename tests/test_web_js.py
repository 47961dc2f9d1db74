"""The browser client's JavaScript unit tests (web/test/*.test.js), run by node's own test
runner as part of the pytest suite."""

import json
import random
import shutil
import subprocess
from pathlib import Path

from kpk_io.rooms import room_from_path

WEB = Path(__file__).resolve().parent.parent / "web"


def test_node_test_runner_passes() -> None:
    node = shutil.which("node")
    assert node, "node is needed for the browser client's tests (apt-get install nodejs)"
    # Files, not the directory: how node expands a directory argument changed across versions.
    files = sorted(str(path.relative_to(WEB)) for path in (WEB / "test").glob("*.test.js"))
    assert files
    result = subprocess.run(
        [node, "--test", *files],
        cwd=WEB, capture_output=True, text=True, timeout=120, check=False,
    )
    summary = [line for line in result.stdout.splitlines() if line.startswith("# ")]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in summary, summary


# Pieces of paths that exercise the rule: escapes good and bad, non-ASCII, ligatures that
# casefold into placeholders, Python-only and JavaScript-only whitespace, URL delimiters.
_PIECES = [
    "a", "Z", "acme", "q1", "-", "_", ".", "~", "!", "*", "'", "(", ")", "+", ":", "@", " ",
    "/", "//", "?", "#", "%", "%2", "%2F", "%20", "%25", "%41", "%zz", "%C3", "%C3%BC", "%E2%82",
    "%F0%9F%8E%89", "%ED%A0%80", "%00", "%7F", "ü", "é", "🎉", "\ufb01", "\u0131", "\u00a0",
    "\u3000", "\ufeff", "\x1c", "\x85", "\t", "undefined", "UNDEFINED", "null", "Null", "nul",
    "unde%EF%AC%81ned", "http://h", "https:", "x:y",
]
_PATTERNS = ["/demo/notes/:org/:project/:page", "/board/:id", "/a/:b/", "/:x/:y"]


def test_room_from_path_agrees_with_python_on_random_paths() -> None:
    rng = random.Random(20260326)
    cases = []
    for _ in range(3000):
        pattern = rng.choice(_PATTERNS)
        path = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 12)))
        if rng.random() < 0.8:
            path = pattern.split(":")[0] + path
        cases.append({"pattern": pattern, "path": path, "room": room_from_path(pattern, path)})
    module = (WEB / "kpk-io" / "room-path.js").as_uri()
    script = (
        f'import {{ roomFromPath }} from "{module}";'
        'let input = ""; for await (const chunk of process.stdin) input += chunk;'
        "const rooms = JSON.parse(input).map((c) => roomFromPath(c.pattern, c.path));"
        "process.stdout.write(JSON.stringify(rooms));"
    )
    node = shutil.which("node")
    assert node
    result = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(cases), capture_output=True, text=True, timeout=60, check=True,
    )
    differ = [
        (case, room) for case, room in zip(cases, json.loads(result.stdout), strict=True)
        if case["room"] != room
    ]
    assert not differ, differ[:10]
    assert sum(case["room"] is not None for case in cases) > 300, "enough paths match"
