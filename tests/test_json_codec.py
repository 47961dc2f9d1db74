"""The fast JSON paths (orjson, when the `speed` extra is installed) read and write exactly
what the standard library does: what is accepted, refused, and the values read."""

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpk_io import json_codec
from kpk_io.change import encode_json

# Strings with lone surrogates, integers past 64 bits, floats of every kind.
scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text()
    | st.text(alphabet=st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010))
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=12,
)


def _stdlib_reads(text: str) -> tuple[str, Any]:
    try:
        return "ok", json.loads(text, parse_constant=_refuse)
    except ValueError:
        return "refused", None


def _refuse(constant: str) -> Any:
    raise ValueError(constant)


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and the types of numbers compared too."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@settings(max_examples=400, deadline=None)
@given(values)
def test_reading_accepts_refuses_and_reads_as_the_standard_library(value: Any) -> None:
    # Texts as a client could send them: with escapes (lone surrogates, NaN spelled out).
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        expected = _stdlib_reads(text)
        try:
            got = ("ok", json_codec.loads(text))
        except ValueError:
            got = ("refused", None)
        assert got[0] == expected[0], text
        assert _same(got[1], expected[1]), text


@pytest.mark.parametrize("text", [
    "123456789012345678901234567890", "[-18446744073709551617]", "1e400", "NaN",
    '"\\ud800"', "[" * 2000 + "]" * 2000, '{"a":1,"a":2}', "\ufeff{}",
])
def test_reading_the_cases_orjson_would_read_otherwise(text: str) -> None:
    expected = _stdlib_reads(text) if not text.startswith("[[[") else ("refused", None)
    try:
        got = ("ok", json_codec.loads(text))
    except (ValueError, RecursionError):
        got = ("refused", None)
    assert got[0] == expected[0]
    assert _same(got[1], expected[1])


@settings(max_examples=400, deadline=None)
@given(values)
def test_writing_refuses_as_the_standard_library_and_reads_back(value: Any) -> None:
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        with pytest.raises(ValueError):
            encode_json(value)
        return
    text = encode_json(value)
    assert _same(json.loads(text), value)
    if not _has_float(value):  # orjson spells some floats otherwise: 0.00001 for 1e-05
        assert text == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False
