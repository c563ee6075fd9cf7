"""Hypothesis strategies for the domain types, one module per concept (synthetic data only)."""
