"""NDC codings: a sender's National Drug Code (http://hl7.org/fhir/sid/ndc, HL7 Terminology
CodeSystem v3-ndc) stays with the medication beside RxNorm; only codings we really drop go to
the loss report. The fixture is literal FHIR JSON; its NDC 68533-056-12 is a real package code
(sertraline hydrochloride tablets 50 mg, bottle of 30: the labeler's "How supplied" section,
https://medlibrary.org/lib/rx/meds/sertraline-hydrochloride-1/page/9/)."""

from __future__ import annotations

import copy
from typing import Any

from mappers import medication, medication_reader, registry
from tests.unit.mappers.foreign.test_foreign_readers import CONTEXT, fixture, read, reasons

NDC = "http://hl7.org/fhir/sid/ndc"
MEDICATION = "MedicationRequest.medication"


def read_resource(resource: dict[str, Any]) -> Any:
    return registry.from_fhir(copy.deepcopy(resource), CONTEXT)


def test_ndc_beside_rxnorm__both_kept__only_the_local_coding_lost() -> None:
    mapped = read("us-core-ehr-medicationrequest-ndc")
    entry = mapped.value
    assert (entry.rxnorm_code, entry.ndc_code) == ("312941", "68533-056-12")
    assert entry.medication == "Sertraline 50 mg tablet"  # the sender's text
    lost = reasons(mapped)
    assert f"{MEDICATION}.coding[2]" in lost  # the formulary's own code
    assert f"{MEDICATION}.coding[0]" not in lost and f"{MEDICATION}.coding[1]" not in lost
    # the two displays differ from the text the sender chose: named, not silently dropped
    assert {f"{MEDICATION}.coding[0].display", f"{MEDICATION}.coding[1].display"} <= set(lost)


def test_ndc_alone_in_a_contained_medication__kept_its_display_is_the_text() -> None:
    # the 11-digit billing form of 68533-056-12 (5-4-2: the product segment padded)
    resource = fixture("us-core-ehr-medicationrequest-contained")
    resource["contained"][0]["code"] = {
        "coding": [{"system": NDC, "code": "68533005612", "display": "Sertraline 50 mg tablet"}]
    }
    mapped = read_resource(resource)
    assert (mapped.value.rxnorm_code, mapped.value.ndc_code) == (None, "68533005612")
    assert mapped.value.medication == "Sertraline 50 mg tablet"
    assert not [path for path in reasons(mapped) if "coding" in path]


def test_malformed_ndc__lost_by_name__the_medication_still_maps() -> None:
    resource = fixture("us-core-ehr-medicationrequest-ndc")
    resource["medicationCodeableConcept"]["coding"][0]["code"] = "NDC-SERTRALINE"
    mapped = read_resource(resource)
    assert (mapped.value.rxnorm_code, mapped.value.ndc_code) == ("312941", None)
    assert "'NDC-SERTRALINE' is not a 10- or 11-digit NDC" in reasons(mapped).values()


def test_our_statement__sends_the_ndc_beside_rxnorm_and_reads_it_back() -> None:
    entry = read("us-core-ehr-medicationrequest-ndc").value
    sent = medication.to_fhir(entry, id_system="urn:test", subject_reference="Patient/p1")
    codings = sent["medicationCodeableConcept"]["coding"]
    assert [(c["system"], c["code"]) for c in codings] == [
        ("http://www.nlm.nih.gov/research/umls/rxnorm", "312941"),
        (NDC, "68533-056-12"),
    ]
    back = medication_reader.from_fhir(sent, id_system="urn:test")
    assert back.value == entry and back.losses == ()
