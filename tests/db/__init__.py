"""Database fixtures: the same tests on SQLite and on the PostgreSQL test cluster."""
