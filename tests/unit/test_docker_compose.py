"""docker-compose.yml cannot run here (no Docker), so keep it honest by reading it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_YAML = ROOT / "sandbox" / "hapi" / "src" / "main" / "resources" / "application.yaml"

# Settings that differ on purpose: compose runs HAPI on PostgreSQL inside its own network.
COMPOSE_ONLY = {
    "spring.datasource.url",
    "spring.datasource.username",
    "spring.datasource.password",
    "spring.datasource.driverClassName",
    "spring.jpa.properties.hibernate.dialect",
}


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _as_env(value: Any) -> str:
    """How a YAML scalar reads once passed as an environment variable."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose__hapi_settings_agree_with_the_sandbox() -> None:
    sandbox = _flatten(yaml.safe_load(SANDBOX_YAML.read_text()))
    env = _compose()["services"]["hapi"]["environment"]
    shared = {k: v for k, v in env.items() if k not in COMPOSE_ONLY}
    assert shared, "compose passes no HAPI settings"
    mismatches = {
        k: (v, _as_env(sandbox.get(k, "<missing in sandbox>")))
        for k, v in shared.items()
        if _as_env(sandbox.get(k, "<missing in sandbox>")) != v
    }
    assert mismatches == {}


def test_compose__every_client_facing_sandbox_setting_is_passed() -> None:
    sandbox = _flatten(yaml.safe_load(SANDBOX_YAML.read_text()))
    env = _compose()["services"]["hapi"]["environment"]
    wanted = {
        k
        for k in sandbox
        if k.startswith("hapi.fhir.")
        and not k.startswith(
            ("hapi.fhir.cors.", "hapi.fhir.server_address", "hapi.fhir.local_base_urls")
        )
    }
    assert wanted - set(env) == set()


def test_compose__hapi_runs_on_postgres_and_iop_bridge_points_at_it() -> None:
    services = _compose()["services"]
    assert services["hapi"]["environment"]["spring.jpa.properties.hibernate.dialect"].endswith(
        "HapiFhirPostgresDialect"
    )
    assert "hapi-db" in services["hapi"]["depends_on"]
    assert services["iop-bridge"]["environment"]["IOP_BRIDGE_FHIR_BASE_URL"] == (
        "http://hapi:8080/fhir"
    )
