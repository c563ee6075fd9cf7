"""IOP client <-> FHIR R4 Patient (business identifier = the program's MRN)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_profiles.canonical import structure_definition_url
from fhir_profiles.terminology.systems import BCP_47
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_read import open_resource, read_date, read_str, read_str_in
from mappers.loss import Loss, Mapped, unmapped_list_entries

# http://hl7.org/fhir/R4/valueset-administrative-gender.html (required binding on Patient.gender)
ADMINISTRATIVE_GENDERS = frozenset({"male", "female", "other", "unknown"})
PROFILE = structure_definition_url("iop-patient")


@dataclass(frozen=True, slots=True)
class Client:
    """A person enrolled in (or referred to) the IOP. Synthetic data only in this repository."""

    mrn: str
    family_name: str
    given_names: tuple[str, ...]
    birth_date: date
    gender: str
    # Patient.communication.language (a BCP-47 tag such as "es", or a text): the language the
    # program should use with the client; None when the sender gave none.
    preferred_language: str | None = None
    # The sender's identifier system of ``mrn`` when the client came from another system's
    # Patient (mappers.foreign.patient); None for our own MRN system.
    mrn_system: str | None = None

    def problems(self) -> list[Problem]:
        """Every reason this client cannot be sent as a Patient, each with its field."""
        found: list[Problem] = []
        if not self.mrn.strip():
            found.append(Problem("Client.mrn", "is required", "required"))
        if not self.family_name.strip():
            found.append(Problem("Client.family_name", "is required", "required"))
        if self.gender not in ADMINISTRATIVE_GENDERS:
            allowed = ", ".join(sorted(ADMINISTRATIVE_GENDERS))
            found.append(Problem("Client.gender", f"{self.gender!r} is not one of: {allowed}"))
        return found


def to_fhir(client: Client, *, mrn_system: str, resource_id: str | None = None) -> dict[str, Any]:
    """Fill Patient.meta.profile, identifier (MRN), name, gender and birthDate from a Client."""
    raise_if_problems("Client", client.problems())
    name: dict[str, Any] = {"use": "official", "family": client.family_name}
    if client.given_names:
        name["given"] = list(client.given_names)
    resource: dict[str, Any] = {"resourceType": "Patient"}
    if resource_id is not None:
        resource["id"] = resource_id
    resource["meta"] = {"profile": [PROFILE]}
    resource["identifier"] = [{"use": "usual", "system": mrn_system, "value": client.mrn}]
    resource["name"] = [name]
    resource["gender"] = client.gender
    resource["birthDate"] = client.birth_date.isoformat()
    if client.preferred_language:
        language = {"coding": [{"system": BCP_47, "code": client.preferred_language}]}
        resource["communication"] = [{"language": language, "preferred": True}]
    return resource


_MAPPED = frozenset({"identifier", "name", "gender", "birthDate", "communication"})
_NAME_MAPPED = frozenset({"use", "family", "given"})


def from_fhir(resource: Any, *, mrn_system: str) -> Mapped[Client]:
    """Read a Client from Patient.identifier (MRN), name, gender and birthDate."""
    problems: list[Problem] = []
    patient, losses = open_resource(resource, "Patient", _MAPPED, problems)
    mrn, mrn_index = _read_mrn(patient.get("identifier") or [], mrn_system, problems)
    losses += unmapped_list_entries(
        patient.get("identifier") or [],
        mrn_index,
        path="Patient.identifier",
        reason=f"identifier outside the MRN system {mrn_system}",
    )
    family, given, name_losses = _read_name(patient.get("name") or [], problems)
    losses += name_losses
    gender = read_str_in(patient, "gender", "Patient", problems, required=True)
    if gender is not None and gender not in ADMINISTRATIVE_GENDERS:
        problems.append(Problem("Patient.gender", f"{gender!r} is not an administrative-gender"))
    birth_date = read_date(patient.get("birthDate"), "Patient.birthDate", problems)
    if patient.get("birthDate") is None:
        problems.append(Problem("Patient.birthDate", "is required", "required"))
    raise_if_problems("Patient", problems)
    assert mrn is not None and family is not None and gender is not None and birth_date
    language, language_losses = _read_language(patient.get("communication") or [])
    client = Client(mrn, family, given, birth_date, gender, language)
    return Mapped(client, {}, tuple(losses + language_losses))


def _read_language(communications: Any) -> tuple[str | None, list[Loss]]:
    """The preferred communication's language (else the first): its BCP-47 code, else its
    first code or text. Every other communication is reported as lost."""
    entries = (
        [c for c in communications if isinstance(c, dict)]
        if isinstance(communications, list)
        else []
    )
    if not entries:
        return None, []
    index = next((i for i, c in enumerate(entries) if c.get("preferred") is True), 0)
    concept = entries[index].get("language")
    concept = concept if isinstance(concept, dict) else {}
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")]
    coding = next((c for c in codings if c.get("system") == BCP_47), codings[0] if codings else {})
    value = coding.get("code") or concept.get("text")
    losses = unmapped_list_entries(
        entries, index, path="Patient.communication", reason="only the preferred language is kept"
    )
    return (str(value)[:64] if value else None), losses


def _read_mrn(
    identifiers: list[Any], mrn_system: str, problems: list[Problem]
) -> tuple[str | None, int | None]:
    for index, identifier in enumerate(identifiers):
        if isinstance(identifier, dict) and identifier.get("system") == mrn_system:
            path = f"Patient.identifier[{index}].value"
            return read_str(identifier.get("value"), path, problems, required=True), index
    problems.append(Problem("Patient.identifier", f"no identifier in MRN system {mrn_system}"))
    return None, None


def _read_name(
    names: list[Any], problems: list[Problem]
) -> tuple[str | None, tuple[str, ...], list[Loss]]:
    """Prefer the official name, else the first; every other name is reported as lost."""
    if not names:
        problems.append(Problem("Patient.name", "is required", "required"))
        return None, (), []
    index = next(
        (i for i, n in enumerate(names) if isinstance(n, dict) and n.get("use") == "official"),
        0,
    )
    name = names[index] if isinstance(names[index], dict) else {}
    path = f"Patient.name[{index}]"
    family = read_str_in(name, "family", path, problems, required=True)
    given = tuple(str(g) for g in name.get("given") or [])
    losses = unmapped_list_entries(
        names, index, path="Patient.name", reason="only one (official) name is kept"
    )
    if not _NAME_MAPPED.issuperset(name):
        losses += [
            Loss(f"{path}.{key}", "name part not modelled")
            for key in name
            if key not in _NAME_MAPPED
        ]
    return family, given, losses
