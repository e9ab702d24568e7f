"""
Carrier failures in words an agent can say or act on: the one place that
words them. Pure; no I/O.

A carrier that could not be asked leaves a :class:`CarrierMessage` (its
outcome, a code, the raw text of what went wrong). :func:`failure_kind` names
the failure, :func:`carrier_problem` keeps it for support (the raw text in
``detail``, never shown as advice), and :func:`sentence` says it, e.g.
"USPS's tracking service is failing; asked at 10:41 UTC; tracksvc will retry
by itself." Advice, summaries, stale reasons and the sidebar use these words;
the raw text goes nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from tracksvc.core.models import CarrierMessage, Outcome
from tracksvc.domain.advice import CARRIER_NAMES
from tracksvc.domain.views import CarrierProblem

#: Message code of a call the circuit breaker refused (never sent).
BREAKER_OPEN_CODE = "BREAKER_OPEN"
#: Message code of a call the shared call budget refused (never sent).
BUDGET_SPENT_CODE = "BUDGET_SPENT"
#: Message code of a call not sent because the carrier asked every replica to wait (a 429 earlier).
CARRIER_WAIT_CODE = "CARRIER_ASKED_TO_WAIT"


class FailureKind(StrEnum):
    """Why a carrier could not be asked (``carrier_problem.kind``)."""

    timeout = "timeout"  # no answer in time
    unavailable = "unavailable"  # connection failed or 5xx
    rate_limited = "rate_limited"  # the carrier said 429 / asked us to wait
    malformed = "malformed"  # an answer tracksvc could not read
    auth_failed = "auth_failed"  # the carrier refused tracksvc's credentials
    budget_spent = "budget_spent"  # tracksvc's own call budget refused the call
    breaker_open = "breaker_open"  # tracksvc's circuit breaker refused the call


#: Outcomes meaning the carrier answered (it does not know the number): not failures.
ANSWERED = frozenset({Outcome.not_found, Outcome.invalid_number})

#: Outcome -> kind, for failures without a code of tracksvc's own.
_BY_OUTCOME: Mapping[Outcome, FailureKind] = {
    Outcome.timeout: FailureKind.timeout,
    Outcome.unavailable: FailureKind.unavailable,
    Outcome.rate_limited: FailureKind.rate_limited,
    Outcome.malformed: FailureKind.malformed,
    Outcome.auth_failed: FailureKind.auth_failed,
}

#: tracksvc's own refusal codes -> kind (they win over the outcome).
_BY_CODE: Mapping[str, FailureKind] = {
    BREAKER_OPEN_CODE: FailureKind.breaker_open,
    BUDGET_SPENT_CODE: FailureKind.budget_spent,
    CARRIER_WAIT_CODE: FailureKind.rate_limited,
}


@dataclass(frozen=True)
class Wording:
    """One kind's words: what happened, whether the carrier was asked, what happens next."""

    happened: str
    asked: bool
    next: str


#: The words per kind; ``{carrier}`` is the carrier's name.
WORDING: Mapping[FailureKind, Wording] = {
    FailureKind.timeout: Wording(
        "{carrier}'s tracking service did not answer in time", True, "tracksvc will retry by itself"
    ),
    FailureKind.unavailable: Wording(
        "{carrier}'s tracking service is failing", True, "tracksvc will retry by itself"
    ),
    FailureKind.rate_limited: Wording(
        "{carrier} asked tracksvc to slow down", True, "tracksvc will retry by itself"
    ),
    FailureKind.malformed: Wording(
        "{carrier}'s tracking service sent an answer tracksvc could not read",
        True,
        "tracksvc will retry by itself; support has the details",
    ),
    FailureKind.auth_failed: Wording(
        "{carrier} refused tracksvc's access",
        True,
        "an administrator must fix this; tell support",
    ),
    FailureKind.budget_spent: Wording(
        "tracksvc has used its allowance of {carrier} calls for now",
        False,
        "tracksvc will ask again by itself shortly",
    ),
    FailureKind.breaker_open: Wording(
        "{carrier}'s tracking service failed several times in a row, so tracksvc paused asking it",
        False,
        "tracksvc will try again by itself shortly",
    ),
}


def failure_kind(message: CarrierMessage) -> FailureKind | None:
    """The kind of failure ``message`` records, or None when the carrier answered."""
    if message.outcome in ANSWERED:
        return None
    return _BY_CODE.get(message.code) or _BY_OUTCOME[message.outcome]


def carrier_problem(message: CarrierMessage | None, at: datetime) -> CarrierProblem | None:
    """
    The failure ``message`` records, kept for support; None when there is none.

    Args:
        message: why the carrier gave no (fresh) answer.
        at: when the lookup met the failure.
    """
    if message is None:
        return None
    kind = failure_kind(message)
    if kind is None:
        return None
    raw = message.message or message.outcome.value
    detail = f"HTTP {message.code}: {raw}" if message.code.isdigit() else raw
    return CarrierProblem(carrier=message.carrier, kind=kind.value, asked_at=at, detail=detail)


def clock_time(moment: datetime) -> str:
    """``10:41 UTC`` (hours and minutes, UTC)."""
    return f"{moment.astimezone(UTC):%H:%M} UTC"


def happened(problem: CarrierProblem) -> str:
    """What went wrong, as a clause: "USPS's tracking service is failing"."""
    return WORDING[FailureKind(problem.kind)].happened.format(carrier=CARRIER_NAMES[problem.carrier])


def sentence(problem: CarrierProblem) -> str:
    """
    The failure as one sentence an agent can say or act on:
    "USPS's tracking service is failing; asked at 10:41 UTC; tracksvc will retry by itself."
    """
    words = WORDING[FailureKind(problem.kind)]
    when = ("asked at " if words.asked else "not asked at ") + clock_time(problem.asked_at)
    return f"{happened(problem)}; {when}; {words.next}."


def stale_reason(problem: CarrierProblem, as_of: datetime) -> str:
    """Why an older answer is shown: "showing the answer from 2026-11-20 09:12 UTC: <sentence>"."""
    return f"showing the answer from {as_of.astimezone(UTC):%Y-%m-%d %H:%M} UTC: {sentence(problem)}"
