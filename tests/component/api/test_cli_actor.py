"""The CLI as an audit actor and its logging: the commands that change a referral are recorded as
done by ``cli:<name>`` (``--actor``, else the OS user), and ``main`` sends every log record
through the server's PHI-safe JSON logging (the no-PHI-in-logs pattern: seeded PHI, scan all)."""

# ruff: noqa: F811  (fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

import getpass
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api import cli_workflows
from api.cli import main
from integration.db import repositories as repo
from integration.db.audit_table import AuditEventRecord
from integration.db.inbound_table import ReferralLink
from integration.db.store import session_scope
from integration.privacy.logging_setup import REDACTED, JsonFormatter, PhiFilter
from tests.component.api.cli_support import restored_logging  # noqa: F401  (main sets logging)
from tests.component.test_no_phi_in_logs import MRN, NAME, NOTE, SEEDED
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

AT = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
IOP = "IOP-DEMO-ORG"  # Settings().organization_id
pytestmark = pytest.mark.usefixtures("restored_logging")


@pytest.fixture
def store(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The migrated store, named to the CLI's Settings by the environment."""
    monkeypatch.setenv("IOP_BRIDGE_DATABASE_URL", db_url)
    monkeypatch.setattr(getpass, "getuser", lambda: "ops.user")
    return engine


def _seed_referral(session: Session, business_id: str, *, dated: bool = True) -> int:
    referral = repo.add_referral(
        session, business_id=business_id, status="requested", client_mrn=MRN,
        iop_organization=f"Organization/{IOP.lower()}", received_at=AT - timedelta(days=2),
        residential_discharge_date=(AT - timedelta(days=1)).date() if dated else None,
    )  # fmt: skip
    session.add(
        ReferralLink(
            referral_id=referral.id, task_identifier_system="urn:example:plac",
            task_identifier_value=business_id, service_request="ServiceRequest/sr1",
            patient="Patient/p1", requester="Organization/res-1", owner="Organization/iop",
            authored_on=AT - timedelta(days=3),
        )
    )  # fmt: skip
    session.flush()
    return referral.id


def _seeded(engine: Engine, *business_ids: str, dated: bool = True) -> list[str]:
    with session_scope(engine) as session:
        return [str(_seed_referral(session, b, dated=dated)) for b in business_ids]


def _events(engine: Engine) -> list[tuple[Any, ...]]:
    with session_scope(engine) as session:
        rows = session.scalars(select(AuditEventRecord).order_by(AuditEventRecord.id))
        return [(r.action, r.agent_subject, r.agent_role, r.agent_organization) for r in rows]


def test_actions__audited_as_the_cli_actor(
    store: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    accepted, declined = _seeded(store, "SD-CLI-1", "SD-CLI-2", dated=False)
    session = ["--id", "SES-CLI-1", "--start", "2026-11-23T18:00:00-05:00",
               "--end", "2026-11-23T21:00:00-05:00"]  # fmt: skip
    for argv in (
        # the seeded package gave no residential discharge date: recorded with the accept
        ["accept", accepted, "--actor", "cm-17", "--residential-discharge-date", "2026-11-16"],
        ["schedule", accepted, "--date", "2026-11-20"],
        ["session", accepted, *session, "--actor", "jo@iop"],
        ["decline", declined, "--reason", "no capacity", "--actor", "cm-17"],
    ):
        assert main(argv) == 0
    assert _events(store) == [
        ("accept", "cli:cm-17", "case-manager", IOP),
        ("schedule-intake", "cli:ops.user", "case-manager", IOP),  # the OS user by default
        ("record-session", "cli:jo@iop", "case-manager", IOP),
        ("decline", "cli:cm-17", "case-manager", IOP),
    ]


@pytest.mark.parametrize("name", [NAME, "", "-x", "a/b", "x" * 65])
def test_actor__a_name_that_is_not_one_id_is_refused(
    name: str, store: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    [referral] = _seeded(store, "SD-CLI-3")
    with pytest.raises(SystemExit) as exited:
        main(["accept", referral, "--actor", name])
    assert exited.value.code == 2 and "--actor" in capsys.readouterr().err
    assert _events(store) == []  # nothing changed


@pytest.mark.parametrize(
    ("login", "expected"),
    [
        ("jdoe", "jdoe"),
        ("CORP\\jane doe", "CORP-jane-doe"),
        ("..", "unknown"),
        (OSError, "unknown"),
    ],
)
def test_os_user__made_id_shaped(
    login: str | type[Exception], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def getuser() -> str:
        if isinstance(login, type):
            raise login("no login name")
        return login

    monkeypatch.setattr(getpass, "getuser", getuser)
    assert cli_workflows.os_user() == expected


def test_help__documents_the_actor(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["decline", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "cli:" in capsys.readouterr().out


def test_main__logs_are_phi_safe_json_lines(
    store: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seeded PHI (the client's MRN on the referral, a decline reason quoting a note) through a
    command, then PHI logged on purpose: every stderr line is JSON, none carries the PHI."""
    [referral] = _seeded(store, "SD-CLI-4")
    assert main(["--verbose", "decline", referral, "--reason", NOTE]) == 0
    root = logging.getLogger()
    [handler] = root.handlers
    assert isinstance(handler.formatter, JsonFormatter)
    assert any(isinstance(f, PhiFilter) for f in handler.filters)
    logging.getLogger("integration.referrals.step_down").warning(
        "referral %s of %s: %s", referral, NAME, NOTE
    )
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert len(lines) >= 2  # the command's own log line(s), then ours
    assert all({"ts", "level", "logger", "message"} <= set(entry) for entry in lines)
    assert lines[-1]["message"] == f"referral {referral} of {REDACTED}: {REDACTED}"
    assert [value for value in SEEDED if value.lower() in err.lower()] == []


def test_serve__uvicorn_logs_through_the_root_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    assert main(["serve", "--port", "8999"]) == 0
    assert seen["log_config"] is None  # uvicorn adds no handlers of its own
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)


def test_main__prints_only_its_own_output_unless_asked(
    store: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    _seeded(store, "SD-CLI-5")
    assert main(["accept", "SD-CLI-5"]) == 0  # the business id, as the tracker shows it
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == "accepted" and err == ""
    assert main(["--verbose", "handoffs"]) == 0
    assert capsys.readouterr().err.strip() != ""  # INFO lines on request


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["session", "SD-CLI-6", "--id", "S-1", "--start", "2026-11-23T18:00:00-05:00",
          "--end", "2026-11-23T21:00:00-05:00"], "does not offer 'session'"),
        (["schedule", "SD-NOPE", "--date", "2026-11-20"], "no referral 'SD-NOPE'"),
        (["decline", "SD-CLI-6", "--reason", "other"], "note: say why"),
    ],
)  # fmt: skip
def test_refusals__one_line_on_stderr_and_exit_1(
    argv: list[str], expected: str, store: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    _seeded(store, "SD-CLI-6")  # requested: no session yet
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and expected in err
    assert err.startswith(f"iop-bridge {argv[0]}: ") and "Traceback" not in err
    assert _events(store) == []
