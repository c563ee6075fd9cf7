"""Server-side sessions of the tracker's browsers (issue 15 finding 7, issue 17 item 2).

The cookie holds a random session token, never the credential: the credential is checked once
at sign-in, the session row keeps who signed in and until when, and logout revokes the row so
the cookie is dead even if it was copied. Only the token's SHA-256 is stored. Each session has
its own CSRF token, which every form of its pages carries and every POST must return.

An API-key session also keeps the key's SHA-256 (the form in which the settings hold keys): a
session lives only while its key is still configured with the same grant, as before, when the
cookie held the key and each page checked it again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from integration.db.tracker_tables import TrackerSession
from integration.settings import Settings

TOKEN_BYTES = 32  # 256 bits from the OS CSPRNG (secrets): not guessable


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session: who, in which role and organization, and its CSRF token."""

    subject: str
    role: str
    organization: str
    csrf_token: str


@dataclass(frozen=True, slots=True)
class NewSession:
    """What the browser gets: the cookie value (shown once, stored only hashed)."""

    token: str
    csrf_token: str


def open_session(
    session: Session,
    who: tuple[str, str, str],
    *,
    api_key: str | None,
    now: datetime,
    seconds: int,
) -> NewSession:
    """Store a new session for ``who`` (subject, role, organization); flushes. ``api_key``:
    the key of an API-key sign-in (its digest is kept), None for a token."""
    subject, role, organization = who
    token, csrf = secrets.token_urlsafe(TOKEN_BYTES), secrets.token_urlsafe(TOKEN_BYTES)
    session.execute(delete(TrackerSession).where(TrackerSession.expires_at < now))  # tidy up
    session.add(
        TrackerSession(
            token_hash=_digest(token), subject=subject, role=role, organization=organization,
            api_key_hash=_digest(api_key) if api_key else None, csrf_token=csrf,
            created_at=now, expires_at=now + timedelta(seconds=seconds),
        )
    )  # fmt: skip
    session.flush()
    return NewSession(token, csrf)


def find_session(
    session: Session, token: str, settings: Settings, now: datetime
) -> SignedIn | None:
    """The live session of this cookie value; None when unknown, expired, revoked, or its API
    key is no longer granted."""
    if not token or len(token) > 128:
        return None
    row = session.get(TrackerSession, _digest(token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.api_key_hash is not None and not _still_granted(row, settings):
        return None
    return SignedIn(row.subject, row.role, row.organization, row.csrf_token)


def revoke(session: Session, token: str, now: datetime) -> bool:
    """End the session of this cookie value (logout); False when there was none."""
    row = session.get(TrackerSession, _digest(token)) if token and len(token) <= 128 else None
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now
    session.flush()
    return True


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of the session's CSRF token with the form's."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def _still_granted(row: TrackerSession, settings: Settings) -> bool:
    grant = next(
        (g for known, g in settings.auth_api_keys.items() if known.lower() == row.api_key_hash),
        None,
    )
    return grant is not None and (grant.role, grant.organization) == (row.role, row.organization)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
