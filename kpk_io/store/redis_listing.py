"""The Redis listing's cursor."""

import base64
import json


def make_cursor(scan: int | None, rest: list[str]) -> str:
    """Opaque to callers: the SCAN cursor and the rooms it found that no page held yet."""
    text = json.dumps([scan, rest], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def parse_cursor(cursor: str | None) -> tuple[int | None, list[str]]:
    if cursor is None:
        return 0, []
    try:
        scan, rest = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise ValueError("not a cursor of this listing") from exc
    valid_scan = scan is None or (isinstance(scan, int) and scan > 0)
    if not valid_scan or not all(isinstance(room, str) for room in rest):
        raise ValueError("not a cursor of this listing")
    return scan, rest
