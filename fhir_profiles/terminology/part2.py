"""What makes a record a 42 CFR Part 2 record: the SUD diagnoses and MOUD medications we know.

42 CFR 2.11 ("Substance use disorder"): a cluster of symptoms from continued use of a substance
despite significant substance-related problems; "for the purposes of these regulations, this
definition does not include tobacco or caffeine". ICD-10-CM block F10-F19 holds F17 (nicotine
dependence), so the block alone over-labels smokers; F17 is excluded by the rule below.
Caffeine has no F1x category of its own (it sits in F15, other stimulants, together with
amphetamines), so F15 stays in.

Codes are matched exactly: without a terminology server a SNOMED CT descendant of a listed
concept (say, a "... in remission" child) is not recognised. Senders that add the ICD-10-CM
coding beside SNOMED CT (US Core asks for both where possible) are recognised by the block rule.

Sources (all read with the search tool, 2026-12-07):

- SNOMED CT disorders: CDC Opioid Prescribing Support IG (cqframework/opioid-cds-r4), ValueSet
  ``conditions-documenting-substance-misuse`` (expansion of 2025-04-09) and
  ``opioid-misuse-disorders`` (rules "is-a 5602001 Opioid abuse", "is-a 75544000 Opioid
  dependence"; expansion lists 191909007 and 145121000119106).
- RxNorm MOUD products: the same IG's ``methadone-medications`` and ``buprenorphine-medications``
  value sets (HL7/cdc-opioid-cpg 1.0.0-ballot; opioid-cds-r4 2022.1.0) and
  fhir-domain-reference.md 2.6 (VSAC Opiate Antagonists) for the buprenorphine/naloxone and
  naltrexone products already in ``clinical``. Buprenorphine products for pain (the BuTrans
  transdermal system, Belbuca buccal film, Buprenex injection) are deliberately absent: they do
  not identify a patient as treated for an SUD. Methadone tablets are also prescribed for pain;
  they are kept, because a methadone product on a referral to an SUD program is far more likely
  OTP maintenance, and an unneeded label costs little where a missing one is an unlawful
  disclosure.
"""

from typing import Final

from fhir_profiles.terminology import clinical
from fhir_profiles.terminology.code import Code, Evidence
from fhir_profiles.terminology.systems import RXNORM, SNOMED_CT

_SRC_42CFR_2_11: Final = (
    "42 CFR 2.11 'Substance use disorder' (does not include tobacco or caffeine)"
)
# ICD-10-CM: the SUD block, and the category 42 CFR 2.11 takes out of it (F17 nicotine dependence).
ICD10_SUD_BLOCK_PREFIX: Final = "F1"
ICD10_TOBACCO_CATEGORY: Final = "F17"
TOBACCO_EXCLUSION_SOURCE: Final = _SRC_42CFR_2_11

_SRC_SUBSTANCE_MISUSE: Final = (
    "https://build.fhir.org/ig/cqframework/opioid-cds-r4/"
    "ValueSet-conditions-documenting-substance-misuse.html (expansion 2025-04-09)"
)
_SRC_OPIOID_MISUSE: Final = (
    "https://build.fhir.org/ig/cqframework/opioid-cds-r4/ValueSet-opioid-misuse-disorders.html"
)
_SRC_METHADONE: Final = (
    "https://build.fhir.org/ig/HL7/cdc-opioid-cpg/ValueSet-methadone-medications.html"
)
_SRC_BUPRENORPHINE: Final = (
    "https://build.fhir.org/ig/HL7/cdc-opioid-cpg/ValueSet-buprenorphine-medications.html; "
    "https://build.fhir.org/ig/cqframework/opioid-cds-r4/"
    "ValueSet-buprenorphine-and-methadone-medications.html"
)


def _disorder(code: str, display: str, source: str = _SRC_SUBSTANCE_MISUSE) -> Code:
    return Code(SNOMED_CT, code, display, source, Evidence.TERM)


def _product(code: str, display: str, source: str) -> Code:
    return Code(RXNORM, code, display, source, Evidence.TERM)


# SNOMED CT substance use disorders (no tobacco concept is listed: 42 CFR 2.11).
SNOMED_SUD_DISORDERS: Final = (
    _disorder("2403008", "Psychoactive substance dependence"),
    _disorder("5002000", "Inhalant dependence"),
    _disorder("7200002", "Alcoholism"),
    _disorder("21647008", "Amphetamine dependence"),
    _disorder("31956009", "Cocaine dependence"),
    _disorder("38247002", "Hallucinogen dependence"),
    _disorder("51339003", "Polysubstance dependence"),
    _disorder("58727001", "PCP dependence"),
    _disorder("66590003", "Alcohol dependence"),
    _disorder("75544000", "Opioid dependence"),
    _disorder("85005007", "Cannabis dependence"),
    _disorder("5602001", "Opioid abuse (disorder)", _SRC_OPIOID_MISUSE),
    _disorder("191909007", "Nondependent opioid abuse (disorder)", _SRC_OPIOID_MISUSE),
    _disorder(
        "145121000119106", "Intravenous nondependent opioid abuse (disorder)", _SRC_OPIOID_MISUSE
    ),
)

# Medications for opioid (and alcohol) use disorder: methadone, buprenorphine for OUD, naltrexone.
MOUD_MEDICATIONS: Final = (
    _product("864708", "methadone hydrochloride 10 MG Oral Tablet [Dolophine]", _SRC_METHADONE),
    _product("864712", "methadone hydrochloride 10 MG Oral Tablet [Methadose]", _SRC_METHADONE),
    _product("864720", "methadone hydrochloride 5 MG Oral Tablet [Dolophine]", _SRC_METHADONE),
    _product("864737", "methadone hydrochloride 5 MG Oral Tablet [Methadose]", _SRC_METHADONE),
    _product(
        "991149", "methadone hydrochloride 10 MG/ML Oral Solution [Methadose]", _SRC_METHADONE
    ),
    _product(
        "864980",
        "methadone hydrochloride 40 MG Tablet for Oral Suspension [Methadose]",
        _SRC_METHADONE,
    ),
    _product(
        "1990745",
        "methadone hydrochloride 40 MG Tablet for Oral Suspension [Diskets]",
        _SRC_METHADONE,
    ),
    _product(
        "1010603",
        "buprenorphine 2 MG / naloxone 0.5 MG Sublingual Film [Suboxone]",
        _SRC_BUPRENORPHINE,
    ),
    _product(
        "1010606",
        "buprenorphine 8 MG / naloxone 2 MG Sublingual Film [Suboxone]",
        _SRC_BUPRENORPHINE,
    ),
    _product(
        "1307058",
        "buprenorphine 4 MG / naloxone 1 MG Sublingual Film [Suboxone]",
        _SRC_BUPRENORPHINE,
    ),
    _product(
        "1996189",
        "0.5 ML buprenorphine 200 MG/ML Prefilled Syringe [Sublocade]",
        _SRC_BUPRENORPHINE,
    ),
    _product(
        "1996193",
        "1.5 ML buprenorphine 200 MG/ML Prefilled Syringe [Sublocade]",
        _SRC_BUPRENORPHINE,
    ),
    clinical.RX_BUP_NAL_FILM_8_2,
    clinical.RX_BUP_NAL_FILM_2_05,
    clinical.RX_BUP_NAL_FILM_4_1,
    clinical.RX_BUP_NAL_FILM_12_3,
    clinical.RX_BUP_NAL_TABLET_8_2,
    clinical.RX_NALTREXONE_50_TABLET,
    clinical.RX_NALTREXONE_ER_INJECTION,
)

# SNOMED CT treatments that name MOUD (a ServiceRequest or CarePlan activity may carry them).
SNOMED_MOUD_TREATMENTS: Final = (
    clinical.SNOMED_MAT_BUPRENORPHINE,
    clinical.SNOMED_MAT_BUPRENORPHINE_NALOXONE,
    clinical.SNOMED_MAT_METHADONE,
)

SUD_CODES: Final = frozenset(
    (c.system, c.code) for c in (*SNOMED_SUD_DISORDERS, *MOUD_MEDICATIONS, *SNOMED_MOUD_TREATMENTS)
)
