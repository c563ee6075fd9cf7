"""The workflow branch of the one error tree rooted in ``mappers.errors``: why a workflow step
refused to act. Each carries the HTTP status and OperationOutcome issue code it is rendered with.

The Task state machine's own refusal, ``mappers.referral_task.IllegalTransitionError``, stays
beside the transition table it enforces: it is a domain rule, raised by pure mappers code too.
"""

from __future__ import annotations

from mappers.errors import InvalidInputError, IopBridgeError


class ReferralNotFound(IopBridgeError):
    """No referral with this id in the store."""

    http_status = 404
    issue_code = "not-found"


class ReferralAmbiguous(IopBridgeError):
    """A business identifier that two senders both use, looked up without saying whose: the
    lookup refuses rather than act on one of them (never merge identities silently)."""

    http_status = 409
    issue_code = "multiple-matches"


class WorkflowNotReady(IopBridgeError):
    """A workflow step was asked for before what it needs exists (e.g. no intake list yet)."""

    http_status = 409
    issue_code = "business-rule"


class ReferralActionRefused(InvalidInputError):
    """The referral is not in a state that allows this action."""

    http_status = 409
    issue_code = "business-rule"


class AlreadyDischarged(IopBridgeError):
    """The referral's client was already discharged; the handoff exists."""

    http_status = 409
    issue_code = "duplicate"


class DisclosureRefused(IopBridgeError):
    """SUD records may not go to this recipient: no consent permits it (42 CFR Part 2)."""

    http_status = 403
    issue_code = "forbidden"
