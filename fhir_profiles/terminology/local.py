"""Codes from the code systems iop-bridge defines itself (resources/CodeSystem-iop-*.json).

These exist because no verified external code covers the concept (modalities such as
motivational interviewing) or because the concept is ours (diagnosis role, goal area). The JSON
CodeSystems are the published definitions; unit tests keep them and these constants equal.
"""

from types import MappingProxyType
from typing import Final

from fhir_profiles.terminology.code import Code, Evidence
from fhir_profiles.terminology.systems import IOP_DIAGNOSIS_ROLE, IOP_GOAL_AREA, IOP_MODALITY


def _local(system: str, code: str, display: str) -> Code:
    """Return a Code from one of our own CodeSystems (its JSON file is the source)."""
    name = system.rsplit("/", 1)[-1]
    source = f"fhir_profiles/resources/CodeSystem-{name}.json"
    return Code(system, code, display, source, Evidence.LOCAL)


# The 11 IOP modalities (DESIGN.md "individualized treatment plan"; seeds/ articles).
MODALITY_CBT: Final = _local(IOP_MODALITY, "cbt", "Cognitive behavioral therapy (CBT)")
MODALITY_DBT: Final = _local(IOP_MODALITY, "dbt", "Dialectical behavior therapy (DBT)")
MODALITY_MOTIVATIONAL_INTERVIEWING: Final = _local(
    IOP_MODALITY, "motivational-interviewing", "Motivational interviewing"
)
MODALITY_FAMILY_THERAPY: Final = _local(IOP_MODALITY, "family-therapy", "Family therapy")
MODALITY_TRAUMA_INFORMED_THERAPY: Final = _local(
    IOP_MODALITY, "trauma-informed-therapy", "Trauma-informed therapy"
)
MODALITY_GROUP_THERAPY: Final = _local(IOP_MODALITY, "group-therapy", "Group therapy")
MODALITY_INDIVIDUAL_THERAPY: Final = _local(
    IOP_MODALITY, "individual-therapy", "Individual therapy"
)
MODALITY_PSYCHOEDUCATION: Final = _local(IOP_MODALITY, "psychoeducation", "Psychoeducation")
MODALITY_RELAPSE_PREVENTION: Final = _local(
    IOP_MODALITY, "relapse-prevention", "Relapse prevention"
)
MODALITY_MEDICATION_MANAGEMENT: Final = _local(
    IOP_MODALITY, "medication-management", "Medication management"
)
MODALITY_HOLISTIC_EXPRESSIVE: Final = _local(
    IOP_MODALITY, "holistic-expressive", "Holistic and expressive therapies"
)
MODALITIES: Final = MappingProxyType(
    {
        c.code: c
        for c in (
            MODALITY_CBT,
            MODALITY_DBT,
            MODALITY_MOTIVATIONAL_INTERVIEWING,
            MODALITY_FAMILY_THERAPY,
            MODALITY_TRAUMA_INFORMED_THERAPY,
            MODALITY_GROUP_THERAPY,
            MODALITY_INDIVIDUAL_THERAPY,
            MODALITY_PSYCHOEDUCATION,
            MODALITY_RELAPSE_PREVENTION,
            MODALITY_MEDICATION_MANAGEMENT,
            MODALITY_HOLISTIC_EXPRESSIVE,
        )
    }
)

# Role of a diagnosis in the IOP plan (carried by the iop-diagnosis-role extension).
DIAGNOSIS_ROLE_PRIMARY: Final = _local(IOP_DIAGNOSIS_ROLE, "primary", "Primary diagnosis")
DIAGNOSIS_ROLE_CO_OCCURRING: Final = _local(
    IOP_DIAGNOSIS_ROLE, "co-occurring", "Co-occurring diagnosis"
)
DIAGNOSIS_ROLES: Final = MappingProxyType(
    {c.code: c for c in (DIAGNOSIS_ROLE_PRIMARY, DIAGNOSIS_ROLE_CO_OCCURRING)}
)

# Goal areas: the SMART goal table in seeds/004_cbd456f7c2bd67eb.txt (sobriety, mental health,
# life skills) plus relationships and employment, the other plan areas the product tracks.
GOAL_AREA_SOBRIETY: Final = _local(IOP_GOAL_AREA, "sobriety", "Sobriety")
GOAL_AREA_MENTAL_HEALTH: Final = _local(IOP_GOAL_AREA, "mental-health", "Mental health")
GOAL_AREA_LIFE_SKILLS: Final = _local(IOP_GOAL_AREA, "life-skills", "Life skills")
GOAL_AREA_RELATIONSHIPS: Final = _local(IOP_GOAL_AREA, "relationships", "Relationships")
GOAL_AREA_EMPLOYMENT: Final = _local(IOP_GOAL_AREA, "employment", "Employment")
GOAL_AREAS: Final = MappingProxyType(
    {
        c.code: c
        for c in (
            GOAL_AREA_SOBRIETY,
            GOAL_AREA_MENTAL_HEALTH,
            GOAL_AREA_LIFE_SKILLS,
            GOAL_AREA_RELATIONSHIPS,
            GOAL_AREA_EMPLOYMENT,
        )
    }
)
