"""Shared by the referral and discharge API tests: the app with the FHIR server mocked at the
transport seam (respx), bearer tokens per role and organization, and submission builders.

Test modules import what they use (``from tests.component.api.referral_support import ...``),
fixtures included, like ``tests.db.fixtures``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy import Engine, create_engine, func, select

from api.app import create_app
from api.schema_examples import EXAMPLE_SUBMISSION
from integration.db.outbox_table import OutboxMessage
from integration.settings import Settings
from tests.db.fixtures import empty_db_url  # noqa: F401  (settings' fixture: import it too)

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "sandbox"))
import step_down_package as sandbox_package

BASE = "http://fhir.test/fhir"
SECRET = "referral-api-test-secret-of-sufficient-length"
ORG_SYSTEM = Settings().organization_id_system
IOP = "IOP-DEMO-ORG"  # the IOP this app serves
RES = "RES-1"  # a residential program's EHR
OTHER = "RES-2"  # another EHR system
NEXT = "NEXT-1"  # the next provider after the IOP
OTHER_IOP = "IOP-ELSEWHERE"
REGISTERED = (IOP, RES, OTHER, NEXT, OTHER_IOP)  # Organizations on the mocked FHIR server
FHIR_JSON = "application/fhir+json"


def org_ref(key: str) -> str:
    """The server reference the mocked FHIR server gives organization ``key``."""
    return f"Organization/org-{key.lower()}"


def auth(role: str, organization: str, subject: str = "caller-1") -> dict[str, str]:
    """An Authorization header with a valid HS256 token for this role and organization. Valid
    for 4 hours: the module-level headers below are made at collection, and on a loaded machine
    the whole suite's later modules run more than 10 minutes after it (they got 401)."""
    claims = {"sub": subject, "role": role, "org": organization, "aud": "iop-bridge",
              "exp": int(time.time()) + 4 * 3600}  # fmt: skip
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


EHR = auth("ehr-system", RES)
OTHER_EHR = auth("ehr-system", OTHER)
NEXT_EHR = auth("ehr-system", NEXT)
CASE_MANAGER = auth("case-manager", IOP)
ADMIN = auth("admin", IOP)
OTHER_CASE_MANAGER = auth("case-manager", OTHER_IOP)


def submission(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """The documented domain JSON example, with every identifier numbered ``n``."""
    text = json.dumps(EXAMPLE_SUBMISSION).replace("SD-000001", f"SD-{n:06d}")
    body: dict[str, Any] = json.loads(text)
    return body | overrides


def fhir_bundle(n: int, *, requester: str = RES) -> dict[str, Any]:
    """The sandbox's 25-resource package as the residential EHR posts it (fresh urn:uuids)."""
    package = sandbox_package.make_package(
        n, iop_organization=org_ref(IOP), residential_organization=org_ref(requester)
    )
    return sandbox_package.to_transaction(package)


def organizations_on_server(request: httpx.Request) -> httpx.Response:
    """The mocked server's answer to Organization?identifier=<system>|<value>: one match for
    the REGISTERED organizations (id ``org-<value>``), none for any other."""
    token = parse_qs(urlsplit(str(request.url)).query).get("identifier", [""])[0]
    system, _, value = token.partition("|")
    entry = [{"resource": {"resourceType": "Organization", "id": org_ref(value).split("/")[1]}}]
    found = system == ORG_SYSTEM and value in REGISTERED
    return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset",
                                     "entry": entry if found else []})  # fmt: skip


# Patients already on the mocked server, by identifier token <system>|<value> (tests add them).
PATIENTS_ON_SERVER: dict[str, dict[str, object]] = {}


def patients_on_server(request: httpx.Request) -> httpx.Response:
    """The mocked server's answer to Patient?identifier=<system>|<value>."""
    token = parse_qs(urlsplit(str(request.url)).query).get("identifier", [""])[0]
    found = PATIENTS_ON_SERVER.get(token)
    entry = [{"resource": found}] if found else []
    return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": entry})


def make_settings(tmp_path: Path, database_url: str | None = None) -> Settings:
    """The app's settings: mocked FHIR base, the store (SQLite in ``tmp_path`` unless given),
    one FHIR try."""
    return Settings(
        fhir_base_url=BASE,  # type: ignore[arg-type]
        database_url=database_url or f"sqlite:///{tmp_path / 'api.db'}",
        retry_max_attempts=1,
        auth_jwt_secret=SECRET,  # type: ignore[arg-type]
        organization_id=IOP,
    )


@pytest.fixture
def settings(tmp_path: Path, empty_db_url: str) -> Settings:  # noqa: F811
    """On SQLite, and on PostgreSQL when the test cluster is configured (tests.db.fixtures)."""
    return make_settings(tmp_path, empty_db_url)


@pytest.fixture
def fhir_mock() -> Iterator[respx.MockRouter]:
    """The FHIR server: Organizations by identifier; tests add the routes they need."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/Organization").mock(side_effect=organizations_on_server)
        router.get("/Patient").mock(side_effect=patients_on_server)
        yield router
    PATIENTS_ON_SERVER.clear()


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def http(app: FastAPI, fhir_mock: respx.MockRouter) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


@pytest.fixture
def store(settings: Settings, http: httpx.AsyncClient) -> Iterator[Engine]:
    """An engine on the app's database (migrated by the app's start)."""
    engine = create_engine(settings.database_url)
    yield engine
    engine.dispose()


def outbox_count(engine: Engine, aggregate_type: str = "referral") -> int:
    """How many outbox messages of this aggregate type were enqueued."""
    with engine.connect() as connection:
        query = select(func.count()).where(OutboxMessage.aggregate_type == aggregate_type)
        return int(connection.scalar(query.select_from(OutboxMessage)) or 0)
