"""The Code value type shared by every terminology module."""

from dataclasses import dataclass
from enum import Enum


class Evidence(Enum):
    """How strongly a code is backed, using the key of the shared domain reference.

    SPEC and IG/TERM codes were read in an HL7 specification, implementation guide or terminology
    expansion. CODE marks codes seen only in third-party code: usable, but to be confirmed
    against the owning terminology before go-live (fhir-domain-reference.md, source key).
    """

    SPEC = "spec"
    IG = "ig"
    TERM = "term"
    CODE = "code"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Code:
    """One coded concept: system URI, code, display, and where we found it."""

    system: str
    code: str
    display: str
    source: str
    evidence: Evidence

    def coding(self) -> dict[str, str]:
        """Return this concept as a FHIR Coding (system, code, display)."""
        return {"system": self.system, "code": self.code, "display": self.display}

    def codeable_concept(self, text: str | None = None) -> dict[str, object]:
        """Return a CodeableConcept with this single coding and text (display by default)."""
        return {"coding": [self.coding()], "text": text if text is not None else self.display}
