"""Code-system URIs and code constants, each with the source it was verified against.

Modules: systems (URIs, core extension URLs), assessments (PHQ-9/GAD-7 LOINC, severity bands),
clinical (SNOMED CT, encounter class, ASAM, ICD-10-CM, RxNorm), workflow (statuses, referral
milestones), privacy (consent and 42 CFR Part 2 labels), local (our own CodeSystems).
"""

from fhir_profiles.terminology.code import Code, Evidence

__all__ = ["Code", "Evidence"]
