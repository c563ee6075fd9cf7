"""mappers.task_trust: which inbound Task versions may change a referral (SDOHCC status table,
by party), and why the others are refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from mappers.referral_task import ReferralTask
from mappers.task_trust import Decision, KnownTask, Party, Refusal, judge, reachable

KNOWN = KnownTask(server_id="t1", focus="ServiceRequest/sr1", requester="Organization/res",
                  owner="Organization/iop", status="requested")  # fmt: skip
TASK = ReferralTask(identifier="SD-1", status="cancelled", focus="ServiceRequest/sr1",
                    patient="Patient/p1", requester="Organization/res",
                    authored_on=datetime(2026, 11, 1, tzinfo=UTC), owner="Organization/iop",
                    status_reason="moved away")  # fmt: skip


def test_judge__the_requesters_cancel_on_the_referrals_own_task_is_taken() -> None:
    assert judge(KNOWN, "t1", TASK).decision is Decision.TAKE


@pytest.mark.parametrize(
    ("known", "server_id", "task", "reason"),
    [
        (replace(KNOWN, server_id=None), "t1", TASK, Refusal.TASK_NOT_BOUND),
        (KNOWN, "forged", TASK, Refusal.OTHER_TASK),
        (KNOWN, None, TASK, Refusal.OTHER_TASK),
        (KNOWN, "t1", None, Refusal.UNREADABLE),
        (KNOWN, "t1", replace(TASK, focus="ServiceRequest/x"), Refusal.FOCUS_CHANGED),
        (KNOWN, "t1", replace(TASK, requester="Organization/x"), Refusal.PARTIES_CHANGED),
        (KNOWN, "t1", replace(TASK, owner="Organization/x"), Refusal.PARTIES_CHANGED),
        (KNOWN, "t1", replace(TASK, status="accepted"), Refusal.NOT_THEIR_MOVE),
        (KNOWN, "t1", replace(TASK, status="completed"), Refusal.NOT_THEIR_MOVE),
        (replace(KNOWN, status="completed"), "t1", TASK, Refusal.ILLEGAL_MOVE),
    ],
)
def test_judge__refusals(
    known: KnownTask, server_id: str | None, task: ReferralTask | None, reason: Refusal
) -> None:
    verdict = judge(known, server_id, task)
    assert (verdict.decision, verdict.reason, verdict.refused) == (Decision.REFUSE, reason, True)


@pytest.mark.parametrize(("ours_now", "echo"), [("requested", "requested"),
                                                ("in-progress", "accepted"),
                                                ("completed", "in-progress"),
                                                ("in-progress", "requested")])  # fmt: skip
def test_judge__echoes_of_our_own_writes_change_nothing(ours_now: str, echo: str) -> None:
    verdict = judge(replace(KNOWN, status=ours_now), "t1", replace(TASK, status=echo))
    assert (verdict.decision, verdict.reason) == (Decision.NOTHING, None)


def test_judge__as_requester_the_owners_moves_are_taken() -> None:
    """The aftercare side: iop-bridge requests, the next provider owns and accepts."""
    requester = replace(KNOWN, ours=Party.REQUESTER)
    assert judge(requester, "t1", replace(TASK, status="accepted")).decision is Decision.TAKE
    assert judge(requester, "t1", TASK).reason is Refusal.NOT_THEIR_MOVE


def test_reachable__follows_the_status_table() -> None:
    assert reachable("accepted") >= {"in-progress", "completed", "cancelled"}
    assert reachable("completed") == frozenset()
