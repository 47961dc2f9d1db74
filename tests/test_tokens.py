"""kpk_io.tokens.issue and `kpk-io token`: tokens the server's verifier accepts."""

import os
import subprocess
import sys
import time

import jwt
import pytest

from kpk_io.config import Settings
from kpk_io.identity import TokenVerifier, Unauthorized
from kpk_io.tokens import issue
from tests.auth_keys import SECRET

VERIFIER = TokenVerifier({"HS256": SECRET})


def test_issue_makes_the_claims_the_server_reads() -> None:
    token = issue("u-1", name="Ann", rooms=["org/a/*"], read_rooms=["pub/*"], ttl=120, key=SECRET)
    identity = VERIFIER.verify(token)
    assert (identity.user, identity.name) == ("u-1", "Ann")
    assert identity.permissions.can_write("org/a/x")
    assert identity.permissions.can_read("pub/x") and not identity.permissions.can_write("pub/x")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 120
    assert identity.expires is not None and abs(identity.expires - (time.time() + 150)) < 5


def test_issue_takes_the_key_audience_and_issuer_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KPK_IO_JWT_SECRET", SECRET)
    monkeypatch.setenv("KPK_IO_JWT_AUDIENCE", "kpk-io")
    monkeypatch.setenv("KPK_IO_JWT_ISSUER", "kpk-app")
    verifier = TokenVerifier({"HS256": SECRET}, audience="kpk-io", issuer="kpk-app")
    assert verifier.verify(issue("u")).user == "u"
    with pytest.raises(Unauthorized, match="audience"):
        verifier.verify(issue("u", audience="elsewhere"))


def test_issue_refuses_without_a_key_and_bad_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KPK_IO_JWT_SECRET", "KPK_IO_JWT_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="no key"):
        issue("u")
    with pytest.raises(ValueError, match="not one string"):
        issue("u", rooms="org/*", key=SECRET)
    with pytest.raises(ValueError, match="ttl"):
        issue("u", ttl=0, key=SECRET)
    with pytest.raises(ValueError, match="sub"):
        issue("", key=SECRET)


def test_issue_with_a_key_reads_no_key_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Neither a short KPK_IO_JWT_SECRET nor a missing KPK_IO_JWT_PRIVATE_KEY file concerns a
    # caller that names its own key; the audience and issuer still default from the
    # environment.
    monkeypatch.setenv("KPK_IO_JWT_SECRET", "short")
    monkeypatch.setenv("KPK_IO_JWT_PRIVATE_KEY", "/nonexistent/key.pem")
    monkeypatch.setenv("KPK_IO_JWT_AUDIENCE", "kpk-io")
    verifier = TokenVerifier({"HS256": SECRET}, audience="kpk-io")
    assert verifier.verify(issue("u", key=SECRET)).user == "u"


def test_issue_signs_with_a_short_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KPK_IO_JWT_SECRET", "short")
    monkeypatch.delenv("KPK_IO_JWT_PRIVATE_KEY", raising=False)
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):  # PyJWT's own warning
        claims = jwt.decode(issue("u"), "short", algorithms=["HS256"])
    assert claims["sub"] == "u"


def test_a_verifier_needs_a_key() -> None:
    assert TokenVerifier.from_settings(Settings()) is None
    assert TokenVerifier.from_settings(Settings(jwt_secret=SECRET)) is not None


def run_token(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kpk_io", "token", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_token_command_prints_a_token_the_server_accepts() -> None:
    env = {**os.environ, "KPK_IO_JWT_SECRET": SECRET}
    env.pop("KPK_IO_JWT_PRIVATE_KEY", None)
    done = run_token("--sub", "ann", "--name", "Ann", "--rooms", "demo/notes/*, x",
                     "--read-rooms", "pub/*", "--ttl", "90", env=env)
    assert done.returncode == 0, done.stderr
    identity = VERIFIER.verify(done.stdout.strip())
    assert (identity.user, identity.name) == ("ann", "Ann")
    assert identity.permissions.write == ("demo/notes/*", "x")
    assert identity.permissions.read == ("pub/*",)
    claims = jwt.decode(done.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 90
    env.pop("KPK_IO_JWT_SECRET")
    refused = run_token("--sub", "ann", env=env)
    assert refused.returncode != 0
    assert "KPK_IO_JWT_SECRET" in refused.stderr
