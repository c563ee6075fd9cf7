"""Finding 3 (medium): a body is bounded wherever one is read, the sign-in form included. A
chunked 400 MiB form raised the process by 0.8 GB before its 401; now it is refused with 413
after the first chunk past the form limit (64 KiB), and the rest is never read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api.limits import MAX_BODY_BYTES
from api.tracker_login import MAX_FORM_BYTES
from tests.component.api.referral_support import app, fhir_mock, http, settings
from tests.db.fixtures import empty_db_url
from tests.security.callers import ehr

pytestmark = pytest.mark.anyio
__all__ = ["app", "empty_db_url", "fhir_mock", "http", "settings"]  # fixtures, by name


CHUNK = 1024 * 1024


class Chunks:
    """A chunked body of ``total`` bytes that counts how much of it the server pulled."""

    def __init__(self, total: int, first: bytes = b"") -> None:
        self.total, self.first, self.sent = total, first, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.first:
            self.sent += len(self.first)
            yield self.first
        while self.sent < self.total:
            self.sent += CHUNK
            yield b"a" * CHUNK


async def test_login__a_chunked_400_mib_form_is_refused_after_its_first_chunks(
    http: httpx.AsyncClient,
) -> None:
    body = Chunks(400 * CHUNK, first=b"kind=token&credential=")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await http.post("/tracker/login", content=body, headers=headers)
    assert response.status_code == 413
    assert body.sent <= MAX_FORM_BYTES + CHUNK + len(body.first)  # nothing read past the limit


async def test_login__a_declared_length_over_the_limit_is_refused_unread(
    http: httpx.AsyncClient,
) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "Content-Length": str(MAX_FORM_BYTES + 1)}  # fmt: skip
    response = await http.post("/tracker/login", content=b"kind=token", headers=headers)
    assert response.status_code == 413


async def test_referrals__a_chunked_body_over_2_mib_is_refused(http: httpx.AsyncClient) -> None:
    body = Chunks(400 * CHUNK)
    response = await http.post("/api/referrals", content=body,
                               headers=ehr() | {"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 413
    assert body.sent <= MAX_BODY_BYTES + CHUNK
