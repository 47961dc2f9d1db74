"""Who is connecting: JWTs checked against the configured key.

Auth is on when KPK_IO_JWT_SECRET (HS256) or KPK_IO_JWT_PUBLIC_KEY (a PEM file: RS256 for
an RSA key, ES256/ES384/ES512 for an EC key on P-256/P-384/P-521) is set. The algorithm of
each key is fixed by the key itself: a token's header only picks among the configured keys,
so `alg: none`, and an HS256 token "signed" with the public key, find no key and are refused.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from kpk_io.config import ConfigError, Settings
from kpk_io.permissions import FULL_ACCESS, Permissions

MAX_TOKEN_LENGTH = 16 * 1024
MAX_PATTERNS = 1000
MAX_NAME_LENGTH = 256
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class Unauthorized(Exception):
    """A token was missing or not acceptable; the message says why (never the token)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Identity:
    """A verified token's subject and what it may do."""

    user: str
    name: str | None = None
    permissions: Permissions = FULL_ACCESS
    # Unix time from which the token is refused (its exp plus the leeway); None: never.
    expires: float | None = None

    @property
    def by(self) -> dict[str, str]:
        """The `by` of this identity's changes."""
        return {"user": self.user} if self.name is None else {"user": self.user,
                                                              "name": self.name}


API_KEY_IDENTITY = Identity("api")


@dataclass(frozen=True)
class TokenVerifier:
    keys: Mapping[str, Any]  # algorithm -> the one key that verifies it
    leeway: int = 30
    audience: str | None = None
    issuer: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenVerifier | None":
        """The verifier the settings configure; None when auth is off. Raises ConfigError
        for a public key file that is not a usable PEM public key."""
        keys: dict[str, Any] = {}
        if settings.jwt_secret is not None:
            keys["HS256"] = settings.jwt_secret
        if settings.jwt_public_key is not None:
            algorithm, key = load_public_key(settings.jwt_public_key)
            keys[algorithm] = key
        if not keys:
            return None
        return cls(keys, settings.jwt_leeway, settings.jwt_audience, settings.jwt_issuer)

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self.keys)

    def verify(self, token: object) -> Identity:
        """The identity of a token; raises Unauthorized."""
        if not isinstance(token, str) or not token:
            raise Unauthorized("a token is required: send it as auth.token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized(f"the token is longer than {MAX_TOKEN_LENGTH} characters")
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            key = self.keys.get(algorithm) if isinstance(algorithm, str) else None
            if key is None or not isinstance(algorithm, str):
                accepted = ", ".join(self.algorithms)
                raise Unauthorized(f"the token must be signed with {accepted}")
            claims = jwt.decode(
                token, key, algorithms=[algorithm], leeway=self.leeway,
                audience=self.audience, issuer=self.issuer, options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(_reason(exc)) from None
        return self._identity(claims)

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        user, name, exp = claims.get("sub"), claims.get("name"), claims.get("exp")
        if not isinstance(user, str) or not user:
            raise Unauthorized("the token's sub must be a non-empty string")
        if name is not None and not (isinstance(name, str) and len(name) <= MAX_NAME_LENGTH):
            raise Unauthorized(f"the token's name must be a string of at most "
                               f"{MAX_NAME_LENGTH} characters")
        if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
            raise Unauthorized("the token's exp must be a number")
        permissions = Permissions(_patterns(claims, "rooms"), _patterns(claims, "read_rooms"))
        return Identity(user, name, permissions, float(exp) + self.leeway)


def load_public_key(path: str) -> tuple[str, Any]:
    """The algorithm and key of a PEM public key file; raises ConfigError."""
    where = f"KPK_IO_JWT_PUBLIC_KEY {path}"
    try:
        key = load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror})") from None
    except ValueError:
        raise ConfigError(f"{where}: not a PEM public key") from None
    algorithm = algorithm_for(key)
    if algorithm is None:
        raise ConfigError(f"{where}: expected an RSA key or an EC key on P-256, P-384 or P-521")
    return algorithm, key


def algorithm_for(key: object) -> str | None:
    """The one algorithm an RSA or EC key (public or private) signs or verifies with."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return _EC_ALGORITHMS.get(key.curve.name)
    return None


def _patterns(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Unauthorized(f"the token's {name} must be a list of room patterns")
    if len(value) > MAX_PATTERNS:
        raise Unauthorized(f"the token's {name} has more than {MAX_PATTERNS} patterns")
    return tuple(value)


# The first that matches says why a token was refused.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired: fetch a fresh one"),
    (jwt.InvalidSignatureError, "the token's signature is not valid"),
    (jwt.InvalidAudienceError, "the token is not meant for this audience"),
    (jwt.InvalidIssuerError, "the token's issuer is not accepted"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.DecodeError, "the token is not a well-formed JWT"),
)


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token has no {exc.claim} claim"
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return f"the token is not valid: {exc}"
