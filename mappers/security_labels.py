"""42 CFR Part 2 security labels on resources that leave iop-bridge (DS4P; reference 3.1-3.2).

What is SUD-derived (the decision every outbound path follows):

1. A Condition coded in ICD-10-CM block F10-F19 ("mental and behavioural disorders due to
   psychoactive substance use"), the same rule as ``mappers.condition.Diagnosis``.
2. Every resource about the client of a referral whose package holds such a Condition: Patient,
   all its Conditions (a co-occurring depression too), Encounters, QuestionnaireResponses,
   MedicationStatements and Lists, CarePlans, Goals, ServiceRequests, Tasks, Compositions.
   42 CFR 2.11/2.12 protect any information that would identify a patient as having or having
   had a substance use disorder; a session Encounter of the program or the client's medication
   list (buprenorphine, naltrexone) does exactly that once the referral is an SUD referral.
3. Never: resources that say nothing about a patient (Organization, Practitioner, Location, ...).
   Labelling them would only make the recipient withhold directory data.

Which referrals hold an SUD Condition is decided where the package is known (``contains_sud``);
where only the store is at hand, the integration layer treats "unknown" as SUD-derived: an
unneeded label costs little, a missing one is an unlawful disclosure.

Label set per resource: v3-Confidentiality R + v3-ActCode ETH + 42CFRPart2 + NORDSCLCD
(``privacy.PART2_SECURITY_LABELS``; reference 3.2 "practical Part 2 label set"). ETH and not
SUD: both are verified in R4 v3-ActCode (privacy.py), ETH is what the discharge Composition and
the consent's default data class already carry, and one sensitivity code across every output
lets a receiver filter on one code.

High-water mark: a document Bundle or DocumentReference gets R + ETH only, the same set
``mappers.discharge_document`` puts on the document: DS4P spec.md forbids privacy-revealing
refrain tags (NODSCLCD, and NORDSCLCD is one of the same kind) there. A transaction Bundle gets
no labels at all: it is a request, never stored; its entries are labelled.

Merging: labels already present are kept (never weakened): one confidentiality code, the most
restrictive of the present one and R (DS4P: exactly one), other codings not repeated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from fhir_profiles.terminology.privacy import (
    CONFIDENTIALITY_RESTRICTED,
    PART2_SECURITY_LABELS,
    SENSITIVITY_ETH,
)
from fhir_profiles.terminology.systems import ICD_10_CM, V3_CONFIDENTIALITY

HIGH_WATER_MARK_LABELS: Final = (CONFIDENTIALITY_RESTRICTED, SENSITIVITY_ETH)
# Resources that describe no patient (R4 resourcelist.html: Administration / Entities); the
# Bundle is handled apart (high-water mark or request container).
NOT_PATIENT_DATA: Final = frozenset(
    {
        "Organization", "OrganizationAffiliation", "Practitioner", "PractitionerRole",
        "Location", "HealthcareService", "Endpoint", "Device", "Medication", "Substance",
        "Questionnaire", "Subscription", "CapabilityStatement", "StructureDefinition",
        "CodeSystem", "ValueSet", "OperationOutcome", "Parameters",
    }
)  # fmt: skip
HIGH_WATER_MARK_TYPES: Final = frozenset({"DocumentReference"})
HIGH_WATER_MARK_BUNDLES: Final = frozenset({"document", "message"})
# v3-Confidentiality from least to most restrictive (R4 v3-Confidentiality: U L M N R V).
_CONFIDENTIALITY_ORDER: Final = ("U", "L", "M", "N", "R", "V")


def is_sud_code(icd10_code: str) -> bool:
    """ICD-10-CM block F10-F19 (with or without the dot): a substance use disorder."""
    code = icd10_code.strip().upper()
    return len(code) >= 3 and code.startswith("F1") and code[2].isdigit()


def is_sud_condition(resource: Mapping[str, Any]) -> bool:
    """A Condition with an ICD-10-CM coding in F10-F19 (Condition.code.coding)."""
    if resource.get("resourceType") != "Condition":
        return False
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, Mapping) else None
    return any(
        isinstance(c, Mapping) and c.get("system") == ICD_10_CM and is_sud_code(str(c.get("code")))
        for c in codings or ()
    )


def contains_sud(resources: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a package (resources, or Bundles of them) holds an SUD Condition."""
    for resource in resources:
        if is_sud_condition(resource):
            return True
        if resource.get("resourceType") == "Bundle" and contains_sud(_entry_resources(resource)):
            return True
    return False


def labels_for(resource: Mapping[str, Any]) -> tuple[Any, ...]:
    """The Part 2 labels ``resource`` gets when SUD-derived (none for non-patient data)."""
    kind = resource.get("resourceType")
    if kind == "Bundle":
        return HIGH_WATER_MARK_LABELS if resource.get("type") in HIGH_WATER_MARK_BUNDLES else ()
    if kind in HIGH_WATER_MARK_TYPES:
        return HIGH_WATER_MARK_LABELS
    if kind in NOT_PATIENT_DATA or not isinstance(kind, str):
        return ()
    return PART2_SECURITY_LABELS


def label(resource: Mapping[str, Any], *, sud_derived: bool) -> dict[str, Any]:
    """A copy of ``resource`` with the Part 2 labels merged into meta.security when it is
    SUD-derived (an F10-F19 Condition always is); entries of a Bundle are labelled too."""
    sud_derived = sud_derived or is_sud_condition(resource)
    copy = dict(resource)
    if copy.get("resourceType") == "Bundle" and isinstance(copy.get("entry"), list):
        copy["entry"] = [_label_entry(e, sud_derived) for e in copy["entry"]]
    labels = labels_for(copy) if sud_derived else ()
    if labels:
        meta = dict(copy.get("meta") or {})
        meta["security"] = merge_security(meta.get("security") or [], labels)
        copy["meta"] = meta
    return copy


def _label_entry(entry: Any, sud_derived: bool) -> Any:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("resource"), Mapping):
        return entry
    return {**entry, "resource": label(entry["resource"], sud_derived=sud_derived)}


def merge_security(present: Iterable[Any], labels: Iterable[Any]) -> list[dict[str, Any]]:
    """``present`` codings plus ``labels`` (Codes): one confidentiality, the most restrictive;
    nothing repeated; the order kept (present first)."""
    merged: list[dict[str, Any]] = [dict(c) for c in present if isinstance(c, Mapping)]
    for code in labels:
        coding = code.coding()
        if code.system == V3_CONFIDENTIALITY:
            merged = _with_confidentiality(merged, coding)
        elif not any(_same(c, coding) for c in merged):
            merged.append(coding)
    return merged


def _with_confidentiality(
    merged: list[dict[str, Any]], coding: dict[str, Any]
) -> list[dict[str, Any]]:
    """One confidentiality code (DS4P), the more restrictive of the present one and
    ``coding``; it takes the place of the first one present."""
    is_conf = [c.get("system") == V3_CONFIDENTIALITY for c in merged]
    present = [c for c, conf in zip(merged, is_conf, strict=True) if conf]
    if present and max(_rank(c.get("code")) for c in present) >= _rank(coding["code"]):
        return merged
    others = [c for c, conf in zip(merged, is_conf, strict=True) if not conf]
    index = is_conf.index(True) if present else len(others)
    return [*others[:index], coding, *others[index:]]


def _rank(code: Any) -> int:
    return _CONFIDENTIALITY_ORDER.index(code) if code in _CONFIDENTIALITY_ORDER else -1


def _same(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    return (one.get("system"), one.get("code")) == (other.get("system"), other.get("code"))


def is_labelled(resource: Mapping[str, Any]) -> bool:
    """Whether meta.security carries the 42CFRPart2 policy label (or the high-water mark)."""
    security = (resource.get("meta") or {}).get("security") or []
    wanted = labels_for(resource)
    return bool(wanted) and all(
        any(isinstance(c, Mapping) and _same(c, w.coding()) for c in security) for w in wanted
    )


def _entry_resources(bundle: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry") or ()
        if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
    ]
