"""Workflow services: short chains of named steps where the store, mappers and FHIR client meet."""
