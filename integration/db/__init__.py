"""iop-bridge's own database: declarative base, domain records, outbox table, migrations runner."""
