"""fhir_profiles layer of iop-bridge."""
