"""The sandbox's step-down package as the pure referral-package code sees it (no database)."""

from __future__ import annotations

from typing import Any

from mappers.referral_package.submission import Parties, rewrite_references
from mappers.registry import MappingContext
from sandbox import step_down_package as sandbox_package

CONTEXT = MappingContext()
ORG_SYSTEM = "http://iop-bridge.example/fhir/sid/organization"
RES, IOP = "Organization/org-res-1", "Organization/org-iop"
PARTIES = Parties((ORG_SYSTEM, "RES-1"), RES, (ORG_SYSTEM, "IOP-DEMO-ORG"), IOP)


def transaction(n: int) -> dict[str, Any]:
    """The 25-resource package as the residential EHR posts it (fresh urn:uuids)."""
    package = sandbox_package.make_package(n, iop_organization=IOP, residential_organization=RES)
    return sandbox_package.to_transaction(package)


def by_reference(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Bundle's resources as a package read from a server holds them: keyed ``Type/id``
    and referencing each other so (each urn:uuid fullUrl stands for ``Type/e<index>``)."""
    keys = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/e{i}"
        for i, e in enumerate(document["entry"])
    }
    return {
        keys[e["fullUrl"]]: {
            **rewrite_references(e["resource"], keys.get),
            "id": keys[e["fullUrl"]].split("/")[1],
        }
        for e in document["entry"]
    }


def task_of(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    return next((k, r) for k, r in resources.items() if r["resourceType"] == "Task")
