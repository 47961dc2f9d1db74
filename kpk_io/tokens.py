"""Minting tokens for kpk-io, e.g. in the Django view that renders a page:

    from kpk_io.tokens import issue

    token = issue(str(request.user.pk), name=request.user.get_full_name(),
                  rooms=[f"kpk/notes/{org.slug}/*"])

PyJWT only, no Django. The key defaults to KPK_IO_JWT_SECRET (HS256), else to the PEM
private key file named by KPK_IO_JWT_PRIVATE_KEY (RS256 or ES256, by the key); the audience
and issuer default to KPK_IO_JWT_AUDIENCE and KPK_IO_JWT_ISSUER when those are set, so a
process with the server's settings mints tokens the server accepts.
"""

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from kpk_io.config import signing_settings
from kpk_io.identity import algorithm_for

__all__ = ["issue"]

_PEM = "-----BEGIN"


def issue(
    sub: str,
    *,
    name: str | None = None,
    rooms: Iterable[str] = (),
    read_rooms: Iterable[str] = (),
    ttl: int = 3600,
    key: Any = None,
    algorithm: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """A JWT for user `sub` that may join and change the rooms matching `rooms`, and join
    and read those matching `read_rooms`, for `ttl` seconds.

    A pattern is an exact room ID, `PREFIX/*` or `*` (docs/protocol.md). `key` is an HS256
    secret, a PEM private key (text or bytes) or a cryptography private key object; the
    algorithm follows from it unless `algorithm` is given. Raises ValueError when no key is
    given or configured, or for a bad argument.
    """
    if not isinstance(sub, str) or not sub:
        raise ValueError("sub must be a non-empty string")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise ValueError("ttl must be a positive whole number of seconds")
    settings = signing_settings(keys=key is None)
    signing_key, chosen = _signing_key(key, settings.secret, settings.private_key)
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl}
    if name is not None:
        claims["name"] = name
    for claim, patterns in (("rooms", rooms), ("read_rooms", read_rooms)):
        listed = _patterns(claim, patterns)
        if listed:
            claims[claim] = listed
    audience = audience if audience is not None else settings.audience
    issuer = issuer if issuer is not None else settings.issuer
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, signing_key, algorithm=algorithm or chosen)


def _signing_key(key: Any, secret: str | None, private_key: str | None) -> tuple[Any, str]:
    """The key to sign with and its algorithm."""
    if key is None:
        if secret is not None:
            return secret, "HS256"
        if private_key is None:
            raise ValueError(
                "no key: set KPK_IO_JWT_SECRET or KPK_IO_JWT_PRIVATE_KEY, or pass key="
            )
        key = Path(private_key).read_bytes()
    if isinstance(key, str | bytes):
        text = key.encode() if isinstance(key, str) else key
        if not text.lstrip().startswith(_PEM.encode()):
            return key, "HS256"
        key = load_pem_private_key(text, password=None)
    algorithm = algorithm_for(key)
    if algorithm is None:
        raise ValueError("expected an HS256 secret, or an RSA or EC (P-256/384/521) private key")
    return key, algorithm


def _patterns(claim: str, patterns: Iterable[str]) -> list[str]:
    if isinstance(patterns, str):
        raise ValueError(f"{claim} must be a list of patterns, not one string")
    listed = list(patterns)
    if not all(isinstance(pattern, str) and pattern for pattern in listed):
        raise ValueError(f"{claim} must be non-empty strings")
    return listed
