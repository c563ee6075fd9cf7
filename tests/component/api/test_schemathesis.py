"""Bad input at scale (issue 5 item 6): schemathesis over the app's OpenAPI schema, in process
(ASGI), with the FHIR server mocked (respx, no network).

Every generated case is sent with a valid bearer token of a role that reaches the route (the
roles rotate per case where several do), so cases get past authentication into the handlers; the
rest-hook receiver's cases carry its shared secret. What a hook call queues runs against the
mocked FHIR server and the module's temporary store only: no real server, no shared database.
Checked on every response: no 5xx (``not_a_server_error``) and the body, status code and media
type as documented (``response_schema_conformance``, ``status_code_conformance``,
``content_type_conformance``). Hypothesis is derandomized: the same cases every run.
"""

from __future__ import annotations

import itertools
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import respx
import schemathesis
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from tests.component.api.referral_support import (
    ADMIN,
    BASE,
    CASE_MANAGER,
    EHR,
    NEXT_EHR,
    OTHER_EHR,
    make_settings,
    organizations_on_server,
)

HOOK_SECRET = "schemathesis-hook-secret"
HOOK = {"Authorization": f"Bearer {HOOK_SECRET}"}
EXAMPLES_PER_OPERATION = 100  # fuzzed per operation, beside the examples and coverage cases
CASES: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()
ROLES: dict[str, Iterator[dict[str, str]]] = {
    "POST /api/referrals": itertools.cycle([EHR, OTHER_EHR]),
    "POST /api/referrals/{referral_id}/discharge": itertools.cycle([CASE_MANAGER]),
    "GET /api/discharges/{referral_id}/document": itertools.cycle([NEXT_EHR, EHR]),
    **{
        f"POST /api/referrals/{{referral_id}}/{action}": itertools.cycle([CASE_MANAGER])
        for action in ("accept", "decline", "intake", "sessions", "reconciliation")
    },
    "GET /sync-records": itertools.cycle([ADMIN]),
    "GET /api/audit": itertools.cycle([ADMIN]),
    "GET /api/audit/AuditEvent": itertools.cycle([ADMIN]),
    "PUT /fhir-hooks/Task/{task_id}": itertools.cycle([HOOK]),
    "POST /fhir-hooks/Task/{task_id}": itertools.cycle([HOOK]),
    "POST /fhir-hooks": itertools.cycle([HOOK]),
}
CAPABILITIES = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
                "software": {"name": "HAPI FHIR Server", "version": "8.8.0"}}  # fmt: skip
ANY_ROLE = itertools.cycle([EHR, CASE_MANAGER, ADMIN, NEXT_EHR])
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def fhir_server() -> Iterator[respx.MockRouter]:
    """The FHIR server: organizations by identifier, empty searches, batches and transactions
    answered (nothing generated here reaches a state that reads more)."""
    empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    gone = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found"}],
    }
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/metadata").respond(json=CAPABILITIES)
        router.get("/Organization").mock(side_effect=organizations_on_server)
        # paths relative to the base: searches, then reads of anything else
        router.get(path__regex=r"^/[A-Za-z]+$").respond(json=empty)
        router.get(path__regex=r"^/.+").respond(404, json=gone)
        router.post("/").respond(json={"resourceType": "Bundle", "type": "batch-response"})
        yield router


# The schema is loaded when the module is (schemathesis' lazy fixture loader does not run on
# pytest 9): the app starts once, on a store in a temporary directory, its lifespan held by
# schemathesis' ASGI client until the process ends.
_STORE = tempfile.TemporaryDirectory(prefix="iop-bridge-schemathesis-")
# The hook secret set, as a deployment sets it (settings.hook_token): without it the receiver
# takes calls from anyone.
SETTINGS = make_settings(Path(_STORE.name)).model_copy(
    update={"hook_token": SecretStr(HOOK_SECRET)}
)
APP = create_app(SETTINGS)
# Every operation of the app, the rest-hook receiver included.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_api__no_server_errors_and_responses_as_documented(case: Any) -> None:
    label = f"{case.operation.method.upper()} {case.operation.path}"
    headers = next(ROLES.get(label, ANY_ROLE))
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    CASES[label] += 1
    STATUSES[response.status_code] += 1


def test_api__at_least_1000_cases_over_every_operation() -> None:
    """Runs after the generated tests (file order): the totals they reached."""
    total = sum(CASES.values())
    print(f"schemathesis: {total} cases over {len(CASES)} operations {dict(CASES)}")
    print(f"schemathesis: statuses {dict(sorted(STATUSES.items()))}")
    assert len(CASES) == len(list(schema.get_all_operations())), CASES  # every operation
    assert total >= 1000, CASES
    assert not [status for status in STATUSES if status >= 500]
