"""The one Settings object: built once at the edge (CLI, app factory) and injected everywhere.

Nothing else in iop-bridge reads ``os.environ``. Every field can be set with an environment
variable named ``IOP_BRIDGE_<FIELD>`` (for example ``IOP_BRIDGE_FHIR_BASE_URL``) or in a ``.env``
file in the working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, HttpUrl, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mappers.registry import MappingContext

# The local HAPI sandbox (sandbox/hapi) listens here unless HAPI_PORT says otherwise.
LOCAL_SANDBOX_FHIR_BASE = "http://127.0.0.1:8090/fhir"
DEFAULT_DATA_DIR = Path("var")


class ApiKeyGrant(BaseModel):
    """What one API key may do: configured under the key's SHA-256 (hex), never the key."""

    name: str
    role: str  # ehr-system | case-manager | admin
    organization: str


class Settings(BaseSettings):
    """Configuration for one iop-bridge process."""

    model_config = SettingsConfigDict(
        env_prefix="IOP_BRIDGE_", env_file=".env", extra="ignore", frozen=True
    )

    fhir_base_url: HttpUrl = Field(
        default=HttpUrl(LOCAL_SANDBOX_FHIR_BASE),
        description="FHIR R4 server base URL; the local HAPI sandbox by default.",
    )
    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR / 'iop-bridge.db'}",
        description="SQLAlchemy URL: SQLite (embedded default) or postgresql+psycopg://...",
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)

    # Business identifier systems. Synthetic defaults under the reserved .example TLD
    # (RFC 2606); a deployment sets its own program's MRN system.
    mrn_system: str = "http://iop-bridge.example/fhir/sid/mrn"
    condition_id_system: str = "http://iop-bridge.example/fhir/sid/condition"
    organization_id_system: str = "http://iop-bridge.example/fhir/sid/organization"
    organization_id: str = "IOP-DEMO-ORG"
    organization_name: str = "Synthetic IOP Program"
    # The IANA time zone of the program's clock: the tracker's forms take local dates and times
    # (intake appointment, session start) in it.
    program_timezone: str = "America/New_York"
    # Identifier namespaces of each referring organization (issue 15 finding 2): JSON
    # {"<organization id>": ["<system or system prefix>", ...]}. A caller writes business
    # identifiers only in its own; an organization without an entry writes only in iop-bridge's
    # default systems and never in another organization's (development and single-referrer use).
    organization_namespaces: dict[str, list[str]] = Field(default_factory=dict)

    # Inbound: where the FHIR server's rest-hook Subscription reaches iop-bridge, the shared
    # secret it sends (channel.header), and how often the _lastUpdated safety-net poll runs.
    hook_base_url: str = "http://127.0.0.1:8000/fhir-hooks"
    hook_token: SecretStr | None = None
    inbound_poll_seconds: float = Field(default=30.0, gt=0)
    # "subscription": a rest-hook Subscription plus the poll as safety net. "poll": no
    # Subscription at all, for servers that cannot call iop-bridge back (the public HAPI R4
    # sandbox cannot reach a private hook URL); the poll then runs at the fallback interval,
    # as it does whenever the Subscription is not active (integration/fhir/subscription_health.py).
    inbound_mode: Literal["subscription", "poll"] = "subscription"
    inbound_fallback_poll_seconds: float = Field(default=5.0, gt=0)

    # Authentication of callers (api/auth.py). JSON in the environment for the collections,
    # e.g. IOP_BRIDGE_AUTH_API_KEYS='{"<sha256 hex>": {"name": "...", "role": "...", ...}}'.
    auth_jwt_secret: SecretStr | None = None  # HS256, for development and tests
    auth_jwt_public_keys: list[str] = Field(default_factory=list)  # PEM, RS256 / ES256
    auth_jwt_audience: str = "iop-bridge"
    auth_jwt_issuer: str | None = None
    auth_api_keys: dict[str, ApiKeyGrant] = Field(default_factory=dict)

    # Outbox workers. With the embedded SQLite default the API process runs the worker and the
    # inbound poll itself; with PostgreSQL, run `iop-bridge worker` processes and turn this off.
    embedded_worker: bool = False
    # requests one worker keeps in flight (its senders share one feed of claims and one settler)
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    worker_batch_size: int = Field(default=10, ge=1, le=500)
    worker_poll_seconds: float = Field(default=1.0, gt=0)

    # Outbound authentication to the FHIR server (integration/fhir/auth.py): none for the local
    # sandbox; a static bearer token; or SMART Backend Services client credentials, the client
    # signing its assertion with a registered private key (PEM, RS384 or ES384).
    fhir_auth: Literal["none", "bearer", "smart-backend"] = "none"
    fhir_bearer_token: SecretStr | None = None
    fhir_smart_client_id: str | None = None
    fhir_smart_private_key: SecretStr | None = None
    fhir_smart_key_id: str = "iop-bridge-1"
    fhir_smart_algorithm: Literal["RS384", "ES384"] = "RS384"
    fhir_smart_scope: str = "system/*.cruds"
    fhir_smart_token_url: str | None = None  # unset: read from .well-known/smart-configuration

    # FHIR client behaviour.
    http_timeout_seconds: float = Field(default=30.0, gt=0)
    http_max_connections: int = Field(default=20, ge=1)
    retry_max_attempts: int = Field(default=6, ge=1, le=20)
    retry_initial_wait_seconds: float = Field(default=0.5, ge=0)
    retry_max_wait_seconds: float = Field(default=30.0, ge=0)

    @field_validator("fhir_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: HttpUrl) -> HttpUrl:
        # Relative references are joined onto this base; one canonical form avoids "//".
        return HttpUrl(str(value).rstrip("/"))

    @field_validator("program_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone (e.g. America/New_York)"
            ) from None
        return value

    def program_zone(self) -> ZoneInfo:
        """The program's time zone (checked at start)."""
        return ZoneInfo(self.program_timezone)

    @model_validator(mode="after")
    def _outbound_auth_is_complete(self) -> Self:
        # Fail at start, naming the missing setting, rather than at the first FHIR request.
        needs: dict[str, list[tuple[str, object]]] = {
            "none": [],
            "bearer": [("fhir_bearer_token", self.fhir_bearer_token)],
            "smart-backend": [
                ("fhir_smart_client_id", self.fhir_smart_client_id),
                ("fhir_smart_private_key", self.fhir_smart_private_key),
            ],
        }
        missing = [
            f"IOP_BRIDGE_{name.upper()}" for name, value in needs[self.fhir_auth] if not value
        ]
        if missing:
            raise ValueError(f"fhir_auth={self.fhir_auth} needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _worker_fits_its_limits(self) -> Self:
        # Each sender holds a message and a connection: fewer of either would leave senders idle.
        if self.worker_batch_size < self.worker_concurrency:
            raise ValueError(
                f"IOP_BRIDGE_WORKER_BATCH_SIZE ({self.worker_batch_size}) must be at least "
                f"IOP_BRIDGE_WORKER_CONCURRENCY ({self.worker_concurrency})"
            )
        if self.http_max_connections < self.worker_concurrency:
            raise ValueError(
                f"IOP_BRIDGE_HTTP_MAX_CONNECTIONS ({self.http_max_connections}) must be at least "
                f"IOP_BRIDGE_WORKER_CONCURRENCY ({self.worker_concurrency})"
            )
        return self

    @property
    def hook_secret(self) -> str | None:
        """The rest-hook shared secret in clear, for the Subscription and the receiving route."""
        return self.hook_token.get_secret_value() if self.hook_token else None

    @property
    def fhir_base(self) -> str:
        """The FHIR base URL as a string without a trailing slash."""
        return str(self.fhir_base_url).rstrip("/")

    def mapping_context(self) -> MappingContext:
        """The identifier systems the pure mappers need, taken from these settings."""
        # Only the MRN system is the deployment's own; iop-bridge mints the other identifiers
        # in its own namespaces (fhir_profiles.canonical), which MappingContext defaults to.
        return MappingContext(
            mrn_system=self.mrn_system, condition_id_system=self.condition_id_system
        )
