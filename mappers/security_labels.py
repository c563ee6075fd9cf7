"""42 CFR Part 2 security labels on resources that leave iop-bridge (DS4P; reference 3.1-3.2).

What is SUD-derived (the decision every outbound path follows):

1. A resource that names a substance use disorder or its treatment (``names_sud``): a coding in
   ICD-10-CM block F10-F19 except F17 (42 CFR 2.11 excludes tobacco; the same rule as
   ``mappers.condition.Diagnosis``), a SNOMED CT SUD disorder, a MOUD medication (methadone,
   buprenorphine for OUD, naltrexone) or a MOUD treatment, in ``code``,
   ``medicationCodeableConcept`` or ``reasonCode`` (``fhir_profiles.terminology.part2``).
   A resource the sender already labelled as Part 2 (v3-ActCode 42CFRPart2, or the sensitivity
   ETH or SUD, in meta.security) is SUD-derived too: the sender's decision is carried forward,
   never second-guessed downwards.
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

from fhir_profiles.terminology.part2 import (
    ICD10_SUD_BLOCK_PREFIX,
    ICD10_TOBACCO_CATEGORY,
    SNOMED_SUD_DISORDERS,
    SUD_CODES,
)
from fhir_profiles.terminology.privacy import (
    CONFIDENTIALITY_RESTRICTED,
    PART2_SECURITY_LABELS,
    POLICY_42CFR_PART2,
    SENSITIVITY_ETH,
    SENSITIVITY_SUD,
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


# A sender's meta.security codings that make its resource a Part 2 record (carried forward).
SENDER_PART2_LABELS: Final = frozenset(
    (c.system, c.code) for c in (POLICY_42CFR_PART2, SENSITIVITY_ETH, SENSITIVITY_SUD)
)
_SNOMED_SUD: Final = frozenset(c.code for c in SNOMED_SUD_DISORDERS)
# Where a resource names what it is about (R4: Condition/Procedure/ServiceRequest.code,
# Medication*.medicationCodeableConcept, ServiceRequest/Procedure/Encounter.reasonCode).
_CONCEPT_KEYS: Final = ("code", "medicationCodeableConcept")


def is_sud_code(icd10_code: str) -> bool:
    """ICD-10-CM block F10-F19 (with or without the dot) except F17 nicotine dependence, which
    42 CFR 2.11 leaves out of "substance use disorder"."""
    code = icd10_code.strip().upper()
    in_block = len(code) >= 3 and code.startswith(ICD10_SUD_BLOCK_PREFIX) and code[2].isdigit()
    return in_block and not code.startswith(ICD10_TOBACCO_CATEGORY)


def is_sud_snomed(snomed_code: str) -> bool:
    """A SNOMED CT substance use disorder we know (exact code; no subsumption without a server)."""
    return snomed_code.strip() in _SNOMED_SUD


def is_sud_coding(coding: Any) -> bool:
    """One Coding that names an SUD, a MOUD medication or a MOUD treatment."""
    if not isinstance(coding, Mapping):
        return False
    system, code = coding.get("system"), str(coding.get("code") or "")
    if system == ICD_10_CM:
        return is_sud_code(code)
    return (system, code.strip()) in SUD_CODES


def is_sud_condition(resource: Mapping[str, Any]) -> bool:
    """A Condition whose code names a substance use disorder (ICD-10-CM or SNOMED CT)."""
    return resource.get("resourceType") == "Condition" and names_sud(resource)


def names_sud(resource: Mapping[str, Any]) -> bool:
    """Whether ``resource``'s code, medication or reason codes name an SUD or its treatment."""
    return any(is_sud_coding(c) for concept in _concepts(resource) for c in _codings(concept))


def sender_labelled_part2(resource: Mapping[str, Any]) -> bool:
    """Whether the sender already labelled ``resource`` as a Part 2 / SUD record."""
    meta = resource.get("meta")
    security = meta.get("security") if isinstance(meta, Mapping) else None
    if not isinstance(security, list):
        return False
    return any(
        isinstance(c, Mapping) and (c.get("system"), c.get("code")) in SENDER_PART2_LABELS
        for c in security
    )


def is_sud_resource(resource: Mapping[str, Any]) -> bool:
    """SUD-derived on its own: names an SUD or its treatment, or the sender labelled it so."""
    if resource.get("resourceType") in NOT_PATIENT_DATA:
        return False
    return names_sud(resource) or sender_labelled_part2(resource)


def contains_sud(resources: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a package (resources, or Bundles of them) holds an SUD-derived resource."""
    for resource in resources:
        if is_sud_resource(resource):
            return True
        if resource.get("resourceType") == "Bundle" and contains_sud(_entry_resources(resource)):
            return True
    return False


def _concepts(resource: Mapping[str, Any]) -> list[Any]:
    reasons = resource.get("reasonCode")
    found = [resource.get(key) for key in _CONCEPT_KEYS]
    return found + (reasons if isinstance(reasons, list) else [])


def _codings(concept: Any) -> list[Any]:
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    return codings if isinstance(codings, list) else []


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
    SUD-derived (one that names an SUD, or that its sender labelled, always is); entries of a
    Bundle are labelled too."""
    sud_derived = sud_derived or is_sud_resource(resource)
    copy = dict(resource)
    if copy.get("resourceType") == "Bundle" and isinstance(copy.get("entry"), list):
        copy["entry"] = [_label_entry(e, sud_derived) for e in copy["entry"]]
    labels = labels_for(copy) if sud_derived else ()
    if labels:
        # A sender's malformed meta (not an object, security not a list) is no label to keep.
        meta = dict(copy["meta"]) if isinstance(copy.get("meta"), Mapping) else {}
        present = meta.get("security")
        meta["security"] = merge_security(present if isinstance(present, list) else [], labels)
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
    """Whether meta.security carries the 42CFRPart2 label set (or the high-water mark); a
    stricter confidentiality than R (a sender's V, kept by ``merge_security``) counts."""
    meta = resource.get("meta")
    present = meta.get("security") if isinstance(meta, Mapping) else None
    security = [c for c in present if _is_map(c)] if isinstance(present, list) else []
    wanted = labels_for(resource)
    return bool(wanted) and all(_carries(security, w.coding()) for w in wanted)


def _carries(security: list[Mapping[str, Any]], wanted: Mapping[str, Any]) -> bool:
    if wanted["system"] == V3_CONFIDENTIALITY:
        present = [c.get("code") for c in security if c.get("system") == V3_CONFIDENTIALITY]
        return any(_rank(code) >= _rank(wanted["code"]) for code in present)
    return any(_same(c, wanted) for c in security)


def _is_map(value: Any) -> bool:
    return isinstance(value, Mapping)


def _entry_resources(bundle: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry") or ()
        if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
    ]
