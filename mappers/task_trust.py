"""Which inbound Task changes a referral may take over: the one trust rule for Tasks from the
FHIR server, whichever way they arrive (rest-hook with or without a token, or the poll).

Anyone who may write to the FHIR server can create a Task carrying a referral's business
identifier, so the identifier only says which referral a Task claims to be about. A change counts
only when all of these hold (SDOHCC TaskForReferralManagement, reference 1.1-1.2):

1. it comes from the Task the referral was created from: that Task's server id, known from the
   Task iop-bridge read when it took the referral in, or from the FHIR server's answer to
   iop-bridge's own delivery of an API submission (never from a notification that merely
   claims the identifier);
2. that Task still focuses the referral's ServiceRequest, and its requester and owner are the
   parties the referral was made between;
3. the status move is one the *other* party makes in the SDOHCC status table: the IOP is the
   owner of a step-down referral, so from the server it takes over only the requester's moves
   (cancel, entered-in-error); the owner's moves (accept, reject, progress, complete) are the
   IOP's own and only ever come back as echoes of its writes;
4. the move is allowed from the referral's current status (``referral_task.TRANSITIONS``).

Anything else is refused with a reason code; the caller keeps the refusal with the inbound event
and audits it. The FHIR server's own access control decides who may write the genuine Task:
iop-bridge cannot tell the requester from anyone else who may update that Task.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mappers.referral_task import TRANSITIONS, ReferralTask, allowed_next

# SDOHCC status table, by the party who makes the move.
REQUESTER_MOVES = frozenset({"cancelled", "entered-in-error"})
OWNER_MOVES = frozenset({"accepted", "rejected", "in-progress", "on-hold", "completed", "failed"})


class Party(StrEnum):
    """Which side of a referral Task iop-bridge is."""

    REQUESTER = "requester"
    OWNER = "owner"


class Refusal(StrEnum):
    """Why an inbound Task change was not taken over (an audit reason code, ids and codes only)."""

    TASK_NOT_BOUND = "task-not-yet-bound"  # our delivery of the Task has no server id yet
    OTHER_TASK = "not-the-referral-task"  # another Task carrying the referral's identifier
    FOCUS_CHANGED = "task-focus-changed"  # not the referral's ServiceRequest
    PARTIES_CHANGED = "task-parties-changed"  # requester or owner not the referral's
    NOT_THEIR_MOVE = "move-not-allowed-for-party"  # a move only our side makes
    ILLEGAL_MOVE = "illegal-status-transition"  # not allowed from the current status
    UNREADABLE = "task-did-not-map"  # the Task is not a referral Task we can read


class Decision(StrEnum):
    """What to do with one inbound Task version."""

    TAKE = "take"  # the other party's move: apply it
    NOTHING = "nothing"  # the genuine Task, nothing new (an echo of our own write, a milestone)
    REFUSE = "refuse"  # ignored, kept with its reason and audited


@dataclass(frozen=True, slots=True)
class KnownTask:
    """What iop-bridge holds of the referral's Task: where it lives, between whom, and where the
    referral stands. References are relative (``Type/id``); None where not known yet."""

    server_id: str | None
    focus: str | None
    requester: str | None
    owner: str | None
    status: str
    ours: Party = Party.OWNER


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision, and the reason when the change is refused."""

    decision: Decision
    reason: Refusal | None = None

    @property
    def refused(self) -> bool:
        """Whether the change is ignored and must be kept and audited."""
        return self.decision is Decision.REFUSE


TAKE, NOTHING = Verdict(Decision.TAKE), Verdict(Decision.NOTHING)


def judge(known: KnownTask, server_id: str | None, incoming: ReferralTask | None) -> Verdict:
    """May the Task ``server_id`` (mapped as ``incoming``) change the referral ``known``?"""
    if known.server_id is None:
        return _refuse(Refusal.TASK_NOT_BOUND)
    if server_id != known.server_id:
        return _refuse(Refusal.OTHER_TASK)
    if incoming is None:
        return _refuse(Refusal.UNREADABLE)
    if known.focus is not None and incoming.focus != known.focus:
        return _refuse(Refusal.FOCUS_CHANGED)
    if _differs(known.requester, incoming.requester) or _differs(known.owner, incoming.owner):
        return _refuse(Refusal.PARTIES_CHANGED)
    return _judge_move(known, incoming.status)


def _judge_move(known: KnownTask, status: str) -> Verdict:
    if status == known.status or _echo(known, status):
        return NOTHING
    theirs = REQUESTER_MOVES if known.ours is Party.OWNER else OWNER_MOVES
    if status not in theirs:
        return _refuse(Refusal.NOT_THEIR_MOVE)
    if status not in allowed_next(known.status):
        return _refuse(Refusal.ILLEGAL_MOVE)
    return TAKE


def _echo(known: KnownTask, status: str) -> bool:
    """A status of our own side that the referral has since moved on from: a late notification
    of one of our own writes (the current status is reachable from it in the status table)."""
    ours = OWNER_MOVES if known.ours is Party.OWNER else REQUESTER_MOVES
    return (status in ours or status == "requested") and known.status in reachable(status)


def reachable(status: str) -> frozenset[str]:
    """Every status the table reaches from ``status`` in one or more moves."""
    seen: set[str] = set()
    frontier = [status]
    while frontier:
        for target in TRANSITIONS.get(frontier.pop(), frozenset()):
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return frozenset(seen)


def _differs(known: str | None, incoming: str | None) -> bool:
    return known is not None and incoming != known


def _refuse(reason: Refusal) -> Verdict:
    return Verdict(Decision.REFUSE, reason)
