"""API keys: random tokens shown once, stored as SHA-256 hashes.

The keys are 256-bit random tokens, so a fast hash is enough (no password-style key
stretching is needed: there is nothing to brute-force). ``Principal`` is who a request acts
as: a key's owner, an admin, or, with ``NAS_AUTH=none``, the local admin.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass

from sqlalchemy.orm import Session

from api.models import KEY_NAME_LENGTH, ApiKeyModel
from api.repositories import ApiKeyRepository

KEY_PREFIX = "nas_"


@dataclass(frozen=True)
class Principal:
    key_id: int | None
    name: str
    admin: bool
    #: The hash of the key the caller sent (``None`` without auth): a long request (an event
    #: stream) ends once that key is revoked or rotated.
    key_hash: str | None = None

    @property
    def sees_all(self) -> bool:
        return self.admin


LOCAL_ADMIN = Principal(key_id=None, name="local", admin=True)


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_key_name(name: str) -> str:
    """``name`` if a key may have it, else ``ValueError`` saying what is valid: 1 to
    ``KEY_NAME_LENGTH`` characters, not blank, text every database stores as given and a
    terminal prints as one line (no control characters: NUL, which PostgreSQL refuses,
    newlines, escapes), and no undecodable bytes: an argument that was not UTF-8
    reaches Python as lone surrogates, which no driver can encode)."""
    if not name.strip():
        raise ValueError(f"must not be empty or blank, got {name!r}")
    if len(name) > KEY_NAME_LENGTH:
        raise ValueError(f"at most {KEY_NAME_LENGTH} characters, got {len(name)}")
    control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        # (a newline or an escape sequence in a name wrote rows of its own, or restyled the
        # terminal, where 'nas keys list' and the owner columns print it)
        raise ValueError(
            f"must not contain control characters (newlines, tabs, escapes), got {control!r}"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not UTF-8 text (character {exc.start})") from None
    return name


def create_key(session: Session, *, name: str, admin: bool = False) -> tuple[ApiKeyModel, str]:
    """Store a new key; returns the row and the key itself (shown once, never stored).
    A name ``check_key_name`` refuses is a ``ValueError``, on every database alike."""
    check_key_name(name)
    key = generate_key()
    row = ApiKeyRepository(session).add(
        ApiKeyModel(name=name, prefix=key[:12], key_hash=hash_key(key), admin=admin)
    )
    return row, key


def rotate_key(session: Session, key_id: int) -> tuple[ApiKeyModel, str] | None:
    """A new secret for the active key ``key_id`` (its id, name, role and jobs stay): returns
    the row and the new key (shown once); the old key is refused from now on. ``None`` when
    no active key has that id."""
    key = generate_key()
    row = ApiKeyRepository(session).replace_secret(key_id, prefix=key[:12], key_hash=hash_key(key))
    return None if row is None else (row, key)


def bearer_token(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def authenticate(session: Session, authorization: str | None) -> Principal | None:
    """The principal for an ``Authorization: Bearer <key>`` header, or ``None``."""
    token = bearer_token(authorization)
    if token is None:
        return None
    key_hash = hash_key(token)
    row = ApiKeyRepository(session).active_by_hash(key_hash)
    if row is None:
        return None
    return Principal(key_id=row.id, name=row.name, admin=row.admin, key_hash=key_hash)
