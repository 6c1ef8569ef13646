"""Pure cascade decisions: who gets which step when, and the cheapest-read order. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

NOT_READ, NOT_DELIVERED, FAILED = "not_read", "not_delivered", "failed"
RECHECK = timedelta(minutes=5)  # a step whose message is not out yet is looked at again after this
PRIOR_WEIGHT = 4  # how many messages the channel average counts as, against a customer's own history


@dataclass(frozen=True)
class Step:
    channel: str
    template: str
    wait_seconds: int
    go_on: str = NOT_READ


@dataclass(frozen=True)
class Outcome:
    """What the current step's message did: each is a timestamp's presence in the outbox row."""

    queued: bool  # not yet handed to the provider
    delivered: bool
    read: bool
    failed: bool
    sent_at: datetime | None = None  # when the provider accepted it: the step's window counts from here


@dataclass(frozen=True)
class Next:
    kind: str  # "advance" | "finish" | "wait"
    outcome: str | None = None
    due_at: datetime | None = None


def next_action(outcome: Outcome | None, step: Step | None, now: datetime) -> Next:
    """At the end of a step's window (or when its message changed): leave, go on, or keep waiting.

    The window counts per message from its own send time: a run planned to wake at the campaign's start +
    window whose message went out later waits until that message's send time + window."""
    if outcome is None or step is None:  # nothing sent yet
        return Next("advance")
    if outcome.read:
        return Next("finish", "read")
    if outcome.failed:
        return Next("advance")
    if outcome.queued:
        return Next("wait", due_at=now + RECHECK)
    if outcome.sent_at is not None and not outcome.failed and (end := window_end(outcome.sent_at, step)) > now:
        return Next("wait", due_at=end)
    if step.go_on == NOT_READ:
        return Next("advance")
    if step.go_on == NOT_DELIVERED:
        return Next("finish", "delivered") if outcome.delivered else Next("advance")
    return Next("finish", "not_failed")  # go on only on failure


def read_rate(own_reads: int, own_sent: int, average: float) -> float:
    """A customer's read rate for a channel, shrunk towards the channel average when history is short."""
    return (own_reads + PRIOR_WEIGHT * average) / (own_sent + PRIOR_WEIGHT)


def cheapest_plan(
    steps: list[Step],
    prices: dict[str, Decimal],
    averages: dict[str, float],
    history: dict[str, tuple[int, int]],
) -> list[int]:
    """Step indexes ordered by expected cost per read for one customer (ties keep the cascade's order).

    `history` maps channel -> (reads, sent) of this customer's own past messages; `averages` the channel's
    read rate over everyone (or the configured expectation).
    """
    def key(i: int) -> tuple[float, int]:
        ch = steps[i].channel
        reads, sent = history.get(ch, (0, 0))
        rate = read_rate(reads, sent, averages.get(ch, 0.0))
        price = float(prices.get(ch, Decimal(0)))
        return (price / rate if rate > 0 else float("inf"), i)

    return sorted(range(len(steps)), key=key)


def window_end(sent_or_due: datetime, step: Step) -> datetime:
    return sent_or_due + timedelta(seconds=step.wait_seconds)
