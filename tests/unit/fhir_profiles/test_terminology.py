"""Code constants: every code carries a source, and the groups agree with each other."""

from collections.abc import Iterator
from types import ModuleType

import pytest

from fhir_profiles.terminology import (
    assessments,
    audit,
    categories,
    clinical,
    documents,
    local,
    part2,
    privacy,
    systems,
    workflow,
)
from fhir_profiles.terminology.code import Code, Evidence

MODULES = (assessments, audit, categories, clinical, documents, local, part2, privacy, workflow)


def _codes_in(value: object) -> Iterator[Code]:
    """Yield every Code found in a constant, looking inside tuples, dicts and instruments."""
    if isinstance(value, Code):
        yield value
    elif isinstance(value, assessments.ScoredAnswer):
        yield value.answer
    elif isinstance(value, assessments.Instrument):
        yield from (value.panel, value.total)
        for item, answers in value.scored_items:
            yield item
            for option in answers:
                yield option.answer
    elif isinstance(value, tuple | list):
        for element in value:
            yield from _codes_in(element)
    elif hasattr(value, "values") and not isinstance(value, ModuleType):
        for element in value.values():
            yield from _codes_in(element)


def _all_codes() -> list[Code]:
    """Every Code constant exported by the terminology modules."""
    found: list[Code] = []
    for module in MODULES:
        for name, value in vars(module).items():
            if name.isupper():
                found.extend(_codes_in(value))
    return found


def test_code_constants__found_in_every_module() -> None:
    codes = _all_codes()
    assert len(codes) > 100
    assert {c.system for c in codes} >= {systems.LOINC, systems.SNOMED_CT, systems.ICD_10_CM}


def test_code_constants__every_code_has_a_source() -> None:
    missing = [c for c in _all_codes() if not c.source.strip()]
    assert missing == []


def test_code_constants__fields_are_non_empty_and_systems_absolute() -> None:
    for code in _all_codes():
        assert code.code.strip() and code.display.strip(), code
        # R4 list-item-flag's system is an OID (codesystem-list-item-flag.html): absolute too.
        assert code.system.startswith(("http://", "urn:oid:")), code


def test_code_constants__same_system_and_code_never_has_two_displays() -> None:
    seen: dict[tuple[str, str], str] = {}
    for code in _all_codes():
        key = (code.system, code.code)
        assert seen.setdefault(key, code.display) == code.display, key


def test_icd10cm_codes__are_all_marked_code_sourced() -> None:
    icd = [c for c in _all_codes() if c.system == systems.ICD_10_CM]
    assert icd, "expected the reference 2.5 diagnoses"
    assert all(c.evidence is Evidence.CODE for c in icd)
    assert all("2.5" in c.source for c in icd)


def test_code_sourced_evidence__is_used_only_for_icd10cm() -> None:
    weak = {c.system for c in _all_codes() if c.evidence is Evidence.CODE}
    assert weak == {systems.ICD_10_CM}


def test_modalities__snomed_map_and_text_only_partition_all_eleven() -> None:
    mapped = set(clinical.SNOMED_BY_MODALITY)
    text_only = set(clinical.TEXT_ONLY_MODALITIES)
    assert len(local.MODALITIES) == 11
    assert mapped.isdisjoint(text_only)
    assert mapped | text_only == set(local.MODALITIES)


def test_modalities__unverified_concepts_stay_text_only() -> None:
    for concept in ("motivational-interviewing", "relapse-prevention", "psychoeducation"):
        assert concept in clinical.TEXT_ONLY_MODALITIES
    assert all(c.system == systems.SNOMED_CT for c in clinical.SNOMED_BY_MODALITY.values())


def test_difficulty_answers__follow_us_core_not_the_swapped_reference_rows() -> None:
    assert assessments.VERY_DIFFICULT.code == "LA6575-0"
    assert assessments.EXTREMELY_DIFFICULT.code == "LA6574-3"


def test_instrument_phq9__max_total_is_27() -> None:
    phq9 = assessments.PHQ9
    best = sum(max(o.score for o in answers) for _, answers in phq9.scored_items)
    assert len(phq9.scored_items) == 9
    assert best == phq9.max_total == 27


def test_instrument_gad7__max_total_is_21() -> None:
    gad7 = assessments.GAD7
    best = sum(max(o.score for o in answers) for _, answers in gad7.scored_items)
    assert len(gad7.scored_items) == 7
    assert best == gad7.max_total == 21


def test_instrument_phq9__difficulty_item_is_not_scored() -> None:
    scored = {item.code for item, _ in assessments.PHQ9.scored_items}
    assert assessments.PHQ9_DIFFICULTY.code not in scored
    assert assessments.PHQ9_TOTAL.code not in scored


def test_instrument_score_of__reads_item_specific_answer_list() -> None:
    assert assessments.GAD7.score_of("68509-9", "LA18938-3") == 2
    assert assessments.GAD7.score_of("69725-0", "LA6570-1") == 2
    with pytest.raises(KeyError, match="no answer"):
        assessments.GAD7.score_of("69725-0", "LA18938-3")
    with pytest.raises(KeyError, match="no scored item"):
        assessments.PHQ9.score_of("69722-7", "LA6572-7")


def test_asam_levels__carry_colorado_system_and_iop_level() -> None:
    assert clinical.ASAM_2_1_INTENSIVE_OUTPATIENT.code == "2.1"
    assert {c.system for c in clinical.ASAM_LEVELS} == {systems.COLORADO_BHA_ASAM_LEVEL_OF_CARE}
    assert len({c.code for c in clinical.ASAM_LEVELS}) == len(clinical.ASAM_LEVELS) == 9


def test_sdohcc_task_statuses__drop_ready_and_received() -> None:
    statuses = workflow.SDOHCC_REFERRAL_TASK_STATUSES
    assert len(set(statuses)) == 10
    assert "ready" not in statuses and "received" not in statuses
    assert set(workflow.SDOHCC_STATUSES_NEEDING_REASON) <= set(statuses)


def test_bser_business_statuses__ten_unique_milestones() -> None:
    codes = [c.code for c in workflow.BSER_BUSINESS_STATUSES]
    assert len(set(codes)) == 10
    assert workflow.BSER_EVENT_UNATTENDED.code == "5.1.2"  # the no-show milestone


def test_part2_labels__one_confidentiality_plus_part2_policy() -> None:
    labels = privacy.PART2_SECURITY_LABELS
    assert sum(c.system == systems.V3_CONFIDENTIALITY for c in labels) == 1
    assert privacy.POLICY_42CFR_PART2 in labels
    assert privacy.REFRAIN_NO_REDISCLOSURE.code == "NORDSCLCD"


def test_code_coding__renders_fhir_coding_and_concept() -> None:
    code = clinical.SNOMED_CBT
    assert code.coding() == {
        "system": systems.SNOMED_CT,
        "code": "228557008",
        "display": code.display,
    }
    assert code.codeable_concept("CBT") == {"coding": [code.coding()], "text": "CBT"}


def test_encounter_class_non_acute__is_v3_nonac_beside_inpatient() -> None:
    nonac = clinical.ENCOUNTER_CLASS_NON_ACUTE
    assert (nonac.system, nonac.code, nonac.display) == (
        systems.V3_ACT_CODE,
        "NONAC",
        "inpatient non-acute",
    )
    assert nonac.system == clinical.ENCOUNTER_CLASS_INPATIENT.system
    assert nonac.evidence is Evidence.SPEC


def test_appointment_no_show__is_the_r4_appointmentstatus_code() -> None:
    no_show = workflow.APPOINTMENT_NO_SHOW
    assert no_show.coding() == {
        "system": "http://hl7.org/fhir/appointmentstatus",
        "code": "noshow",
        "display": "No Show",
    }


def test_reason_cancelled_extension__is_the_r4_core_url() -> None:
    assert systems.ENCOUNTER_REASON_CANCELLED_EXTENSION == (
        "http://hl7.org/fhir/StructureDefinition/encounter-reasonCancelled"
    )


@pytest.mark.parametrize("instrument", assessments.INSTRUMENTS, ids=lambda i: i.key)
def test_severity_bands__descend_to_zero_within_the_total(
    instrument: assessments.Instrument,
) -> None:
    lowest = [low for low, _ in assessments.SEVERITY_BANDS[instrument.key]]
    assert lowest == sorted(lowest, reverse=True)
    assert len(set(lowest)) == len(lowest)
    assert lowest[-1] == 0 and lowest[0] <= instrument.max_total


def test_severity_bands__phq9_kroenke_cut_points() -> None:
    assert assessments.PHQ9_SEVERITY_BANDS == (
        (20, "severe"),
        (15, "moderately severe"),
        (10, "moderate"),
        (5, "mild"),
        (0, "minimal"),
    )
    assert "Kroenke" in assessments.SRC_PHQ9_SEVERITY


def test_severity_bands__gad7_cut_points() -> None:
    bands = assessments.SEVERITY_BANDS[assessments.GAD7.key]
    assert bands == ((15, "severe"), (10, "moderate"), (5, "mild"), (0, "minimal"))
