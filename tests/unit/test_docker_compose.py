"""docker-compose.yml cannot run here (no Docker), so keep it honest by reading it: HAPI's
settings against the sandbox's, the image against the pinned release, and the settings that
only work if the services agree with one another (URLs, ports, health checks, start order)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_YAML = ROOT / "sandbox" / "hapi" / "src" / "main" / "resources" / "application.yaml"
POM = ROOT / "sandbox" / "hapi" / "pom.xml"
IOP_SERVICES = ("iop-bridge-api", "iop-bridge-worker")

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
    container_ports = {p.rsplit(":", 1)[1] for p in services["hapi"]["ports"]}
    for name in IOP_SERVICES:
        base = urlsplit(services[name]["environment"]["IOP_BRIDGE_FHIR_BASE_URL"])
        assert (base.hostname, base.path) == ("hapi", "/fhir")
        assert str(base.port) in container_ports


def test_compose__hapi_image_is_the_release_the_live_tier_tests() -> None:
    pinned = re.search(r"<hapi\.version>([^<]+)</hapi\.version>", POM.read_text())
    assert pinned
    image = _compose()["services"]["hapi"]["image"]
    assert re.fullmatch(rf"hapiproject/hapi:v{re.escape(pinned.group(1))}(-\d+)?", image), image


def test_compose__iop_bridge_is_an_api_and_a_worker_on_one_postgres() -> None:
    services = _compose()["services"]
    api, worker = (services[name] for name in IOP_SERVICES)
    assert "serve" in api["command"] and "worker" in " ".join(worker["command"])
    urls = {services[name]["environment"]["IOP_BRIDGE_DATABASE_URL"] for name in IOP_SERVICES}
    assert len(urls) == 1  # both on the same database
    database = urlsplit(urls.pop())
    assert database.scheme == "postgresql+psycopg"
    assert database.hostname in services and "healthcheck" in services[database.hostname]
    for name in IOP_SERVICES:
        assert services[name]["environment"]["IOP_BRIDGE_EMBEDDED_WORKER"] == "false"


def test_compose__the_hook_url_is_the_api_as_the_hapi_container_reaches_it() -> None:
    services = _compose()["services"]
    api_port = services["iop-bridge-api"]["environment"]["IOP_BRIDGE_API_PORT"]
    assert services["iop-bridge-api"]["environment"]["IOP_BRIDGE_API_HOST"] == "0.0.0.0"
    for name in IOP_SERVICES:
        env = services[name]["environment"]
        hook = urlsplit(env["IOP_BRIDGE_HOOK_BASE_URL"])
        # a service name on the compose network: 127.0.0.1 in HAPI's container is HAPI itself
        assert (hook.hostname, str(hook.port), hook.path) == (
            "iop-bridge-api",
            api_port,
            "/fhir-hooks",
        )
        assert env["IOP_BRIDGE_HOOK_TOKEN"].startswith("${IOP_BRIDGE_HOOK_TOKEN:?")  # no default


def test_compose__start_order_waits_on_health_checks_that_exist() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for needed, rule in (service.get("depends_on") or {}).items():
            assert needed in services, f"{name} depends on unknown {needed}"
            if rule.get("condition") == "service_healthy":
                assert "healthcheck" in services[needed], f"{needed} has no healthcheck"
    assert services["iop-bridge-api"]["depends_on"]["iop-bridge-db"]["condition"] == (
        "service_healthy"
    )
    assert services["iop-bridge-worker"]["depends_on"]["iop-bridge-api"]["condition"] == (
        "service_healthy"
    )
    probe = " ".join(services["iop-bridge-api"]["healthcheck"]["test"])
    port = services["iop-bridge-api"]["environment"]["IOP_BRIDGE_API_PORT"]
    assert f"127.0.0.1:{port}/health" in probe
