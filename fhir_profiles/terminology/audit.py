"""AuditEvent codes: event type, entity type, entity role and source type (R4 auditevent.html).

Every code and display was checked in the R4 code systems HAPI's validator ships
(hapi-fhir-validation-resources-r4 8.12.1, valuesets.xml).
"""

from typing import Final

from fhir_profiles.terminology.code import Code, Evidence
from fhir_profiles.terminology.systems import (
    AUDIT_ENTITY_TYPE,
    AUDIT_EVENT_TYPE,
    DICOM_DCM,
    OBJECT_ROLE,
    SECURITY_SOURCE_TYPE,
)

_SRC: Final = "R4 valuesets.xml (hapi-fhir-validation-resources-r4 8.12.1)"

# AuditEvent.type (R4 AuditEvent ID value set: DICOM DCM and audit-event-type).
EXPORT: Final = Code(DICOM_DCM, "110106", "Export", _SRC, Evidence.SPEC)
PATIENT_RECORD: Final = Code(DICOM_DCM, "110110", "Patient Record", _SRC, Evidence.SPEC)
USER_AUTHENTICATION: Final = Code(DICOM_DCM, "110114", "User Authentication", _SRC, Evidence.SPEC)
REST: Final = Code(AUDIT_EVENT_TYPE, "rest", "RESTful Operation", _SRC, Evidence.SPEC)
# AuditEvent.entity.type / .role and AuditEvent.source.type.
SYSTEM_OBJECT: Final = Code(AUDIT_ENTITY_TYPE, "2", "System Object", _SRC, Evidence.SPEC)
DOMAIN_RESOURCE: Final = Code(OBJECT_ROLE, "4", "Domain Resource", _SRC, Evidence.SPEC)
APPLICATION_SERVER: Final = Code(
    SECURITY_SOURCE_TYPE, "4", "Application Server", _SRC, Evidence.SPEC
)
