"""Keys and tokens for the auth tests: a shared HS256 secret, generated RSA and EC key pairs
in PEM files, and JWTs made with PyJWT (or by hand, for tokens PyJWT refuses to make)."""

import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SECRET = secrets.token_urlsafe(32)
OTHER_SECRET = secrets.token_urlsafe(32)


def claims(sub: str = "ann", ttl: float = 600, **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "exp": int(time.time() + ttl), **extra}


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """A JWS PyJWT would not make: `alg: none` (key None), or HS256 keyed with any bytes
    (such as a public key's PEM: the algorithm-confusion attack)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


class KeyPair:
    """A private key and its public key's PEM file."""

    def __init__(self, private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
                 directory: Path, name: str) -> None:
        self.private = private
        self.public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_path = directory / f"{name}.pub.pem"
        self.public_path.write_bytes(self.public_pem)
        self.private_path = directory / f"{name}.pem"
        self.private_path.write_bytes(private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))

    @classmethod
    def rsa(cls, directory: Path) -> "KeyPair":
        return cls(rsa.generate_private_key(65537, 2048), directory, "rsa")

    @classmethod
    def ec(cls, directory: Path) -> "KeyPair":
        return cls(ec.generate_private_key(ec.SECP256R1()), directory, "ec")

    def sign(self, payload: dict[str, Any]) -> str:
        algorithm = "RS256" if isinstance(self.private, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(payload, self.private, algorithm=algorithm)
