"""Reading FHIR written by other systems: the anti-corruption layer of the inbound path.

Our own readers (``mappers.<concept>.from_fhir``) read the dialect iop-bridge writes, exactly,
so that a round trip is the identity. Senders write other shapes: their own identifier systems,
US Core categories, SNOMED-only or text-only diagnoses, LOINC questionnaires with prefixed or
nested linkIds, MedicationRequest instead of MedicationStatement, date-only dates, Practitioner
or PractitionerRole parties, absolute and ``urn:uuid`` references. Each module here translates
one such shape into our domain types (directly, or by rewriting the resource into our dialect
and handing it to our reader), and names what it could not keep with its FHIR path.

``mappers.registry`` chooses: a resource in our dialect (one of our identifier systems, one of
our Questionnaires) goes to our reader, anything else here. Strictness stays where it belongs,
in what we write.
"""
