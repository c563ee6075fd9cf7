"""SMART Backend Services, live: iop-bridge's FHIR client behind a token-checking gateway to HAPI.

``sandbox/smart_gateway.py`` runs under uvicorn on a free loopback port in front of the real HAPI
sandbox: discovery, a token endpoint that verifies iop-bridge's signed assertion, and a proxy
that forwards only requests with a token it issued. A step-down package goes through it and is
read back page by page; a revoked token is replaced; an unregistered key is refused by name.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from integration.db.store import create_db_engine
from integration.fhir.client import FhirClient
from integration.fhir.client_push import push_client
from integration.fhir.errors import FhirUnauthorized
from integration.settings import Settings
from tests.builders import make_client, make_diagnosis
from tests.conftest import live_base_url
from tests.servers import free_port, serve_in_thread

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox"))
from smart_gateway import GatewayState, create_gateway

pytestmark = [pytest.mark.live, pytest.mark.anyio]

CLIENT_ID = "iop-bridge-live"


def _keypair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return _keypair()


@pytest.fixture
def gateway(keys: tuple[str, str]) -> Iterator[GatewayState]:
    port = free_port()
    state = GatewayState(
        public_url=f"http://127.0.0.1:{port}",
        upstream=live_base_url(),
        clients={CLIENT_ID: keys[1]},
    )
    with serve_in_thread(create_gateway(state), port=port, name="smart-gateway"):
        yield state


def _settings(gateway: GatewayState, private_pem: str) -> Settings:
    return Settings(  # token endpoint unset: discovered from .well-known/smart-configuration
        fhir_base_url=f"{gateway.public_url}/fhir",  # type: ignore[arg-type]
        fhir_auth="smart-backend",
        fhir_smart_client_id=CLIENT_ID,
        fhir_smart_private_key=private_pem,  # type: ignore[arg-type]
        fhir_smart_scope="system/*.cruds",
        retry_initial_wait_seconds=0.05,
        retry_max_wait_seconds=1.0,
    )


@pytest.fixture
async def client(gateway: GatewayState, keys: tuple[str, str]) -> AsyncIterator[FhirClient]:
    fhir = FhirClient.from_settings(_settings(gateway, keys[0]))
    yield fhir
    await fhir.aclose()


async def test_without_a_token_the_gateway_refuses(gateway: GatewayState) -> None:
    async with httpx.AsyncClient() as plain:
        answer = await plain.get(f"{gateway.public_url}/fhir/metadata")
    assert answer.status_code == 401
    assert gateway.refused_tokens == 1


async def test_writes_and_paged_reads_go_through_with_one_discovered_token(
    gateway: GatewayState, keys: tuple[str, str], unique: str, tmp_path: Path
) -> None:
    settings = _settings(gateway, keys[0])
    fhir = FhirClient.from_settings(settings)
    engine = create_db_engine(f"sqlite:///{tmp_path / 'iop.db'}")
    person = make_client(mrn=f"MRN-{unique}")
    diagnoses = [make_diagnosis(identifier=f"DX-{unique}-{n}") for n in range(3)]
    pushed = await push_client(fhir, engine, settings, person, diagnoses)
    patient = pushed[0].server_id
    found = [
        r
        async for r in fhir.search_all(
            "Condition", {"subject": f"Patient/{patient}", "_count": "1"}
        )
    ]
    await fhir.aclose()
    engine.dispose()
    assert [p.created for p in pushed] == [True] * 4
    assert len(found) == 3  # three pages, each next link rewritten to and served by the gateway
    assert gateway.issued == 1  # discovery once, one token shared by every request
    assert gateway.refused_tokens == 0


async def test_a_revoked_token_is_replaced_without_failing_the_request(
    gateway: GatewayState, client: FhirClient
) -> None:
    await client.capabilities()
    gateway.revoke_all()
    assert (await client.capabilities())["resourceType"] == "CapabilityStatement"
    assert gateway.issued == 2
    assert gateway.refused_tokens == 1  # the one request sent with the revoked token


async def test_an_unregistered_key_is_refused_as_invalid_client(gateway: GatewayState) -> None:
    other_private, _ = _keypair()
    fhir = FhirClient.from_settings(_settings(gateway, other_private))
    with pytest.raises(FhirUnauthorized, match="invalid_client"):
        await fhir.capabilities()
    await fhir.aclose()
    assert gateway.refused_assertions == ["invalid_client"]
