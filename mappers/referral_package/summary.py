"""The case manager's view of a referral package, stored with the referral's link: what the
sender said, as iop-bridge read it (diagnoses with their SUD / mental-health kinds, the PHQ-9
and GAD-7 totals recomputed beside the sender's own, the discharge medications, the consent and
its period, the sender's preferences, its security labels) and what needs attention (no
discharge date: no follow-up windows; a sender's total that does not add up).

Plain JSON values only: it is shown by the tracker and stored in referral_link.package_summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mappers.referral_package.mapping import MappedPackage

NO_DISCHARGE_DATE = (
    "No residential discharge date: the 7- and 30-day follow-up windows cannot be computed"
)


def summarize(package: MappedPackage) -> dict[str, Any]:
    """The summary of ``package`` (see the module docstring)."""
    diagnoses = [
        {
            "display": d.display,
            "icd10": d.icd10_code or None,
            "snomed": d.snomed_code,
            "category": d.category or None,
            "clinical_status": d.clinical_status or None,
            "substance_use": d.is_substance_use,
            "mental_health": d.is_mental_health,
        }
        for d in package.diagnoses
    ]
    kinds = {k for d in diagnoses for k in ("substance_use", "mental_health") if d[k]}
    return {
        "diagnoses": diagnoses,
        "co_occurring": kinds == {"substance_use", "mental_health"},
        "stay": _stay(package),
        "assessments": [
            {
                "instrument": a.instrument,
                "total": a.total,
                "severity": a.severity,
                "sender_total": a.sender_total,
                "disagrees": a.total_disagrees,
                "authored": a.authored.isoformat(),
            }
            for a in package.assessments
        ],
        "screenings": [
            {
                "instrument": s.instrument,
                "answered": s.answered_items,
                "sender_total": s.sender_total,
            }
            for s in package.screenings
        ],
        "medications": [
            {
                "medication": e.medication,
                "rxnorm": e.rxnorm_code,
                "ndc": e.ndc_code,
                "dose": e.dose_text,
            }
            for e in (package.medications.entries if package.medications else ())
        ],
        "consent": _consent(package),
        "preferences": package.service_request.note,
        "labels": sorted({f"{system}|{code}" for _, system, code in package.labels}),
        "part2": package.part2,
        "attention": attention(package),
    }


def attention(package: MappedPackage) -> list[str]:
    """What the case manager must see first: what the workflow cannot do without."""
    found = []
    if package.stay is None or package.stay.discharged is None:
        found.append(NO_DISCHARGE_DATE)
    for a in package.assessments:
        if a.total_disagrees:
            found.append(
                f"{a.instrument.upper()}: the sender's total {a.sender_total:g} disagrees with "
                f"{a.total} recomputed from the answers ({a.total} is used)"
            )
    return found


def _stay(package: MappedPackage) -> dict[str, Any] | None:
    stay = package.stay
    if stay is None:
        return None
    return {
        "asam_level": stay.asam_level or None,
        "admitted": stay.admitted.date().isoformat(),
        "discharged": stay.discharged.date().isoformat() if stay.discharged else None,
        "disposition": stay.discharge_disposition,
    }


def _consent(package: MappedPackage) -> dict[str, Any] | None:
    consent = package.consent
    if consent is None:
        return None
    return {
        "status": consent.status,
        "start": consent.start.isoformat(),
        "end": consent.end.isoformat(),
        "recipients": list(consent.recipients),
        "purposes": list(consent.purposes),
    }
