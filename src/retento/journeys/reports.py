"""The funnel and money report of a journey (and version): entered, per step reached / sent / delivered / opened /
clicked / converted, exits by reason, orders and revenue attributed by last touch inside the journey within a
window, the cost of its messages and per conversion, and each A/B split's uplift against its holdout with a 95%
confidence interval. `funnel` is pure; `report` loads what it needs in a few queries."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retento.journeys.models import Journey, JourneyRun, JourneyStep, JourneyVersion
from retento.messaging import service as messaging
from retento.orders import queries as orders

# What the source quotes for such chains (PRODUCT.md section 6), shown beside the journey's own figures.
BENCHMARKS = {"welcome": {"open_rate": 0.6391, "click_rate": 0.269, "conversion": 0.0195},
              "post_purchase": {"conversion": 0.0043}, "abandoned_cart": {"conversion": 0.0094}}
ATTRIBUTION = ("last touch inside the journey: an order (not cancelled) is credited to the journey's latest message "
               "sent to the customer before it, if that was at most `window_days` earlier; each order once")
Z95 = 1.959964


@dataclass(frozen=True)
class Run:
    id: int
    customer_id: int
    state: str
    exit_reason: str | None
    entered_at: datetime


@dataclass(frozen=True)
class Step:
    run_id: int
    step: str
    kind: str
    outcome: str
    detail: dict[str, Any] | None
    at: datetime


def funnel(runs: list[Run], steps: list[Step], messages: list[dict[str, Any]], order_rows: list[dict[str, Any]], *,
           order: list[str], window: timedelta) -> dict[str, Any]:
    """Pure: the report from the runs, their step log, the messages of their send steps (`run_id` = the cascade
    run) and the customers' orders."""
    by_run = {r.id: r for r in runs}
    cascade_of: dict[int, tuple[int, str]] = {}  # cascade run id -> (journey run id, step)
    per_step: dict[str, Counter[str]] = defaultdict(Counter)
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    for s in steps:
        per_step[s.step]["reached"] += 1
        outcomes[s.step][s.outcome] += 1
        if s.kind == "send" and s.detail and s.detail.get("cascade_run_id"):
            cascade_of[s.detail["cascade_run_id"]] = (s.run_id, s.step)
    cost: dict[str, Decimal] = defaultdict(Decimal)
    touches: dict[int, list[tuple[datetime, str]]] = defaultdict(list)  # customer -> (sent_at, step)
    for m in messages:
        run_id, step = cascade_of.get(m["run_id"], (None, None))
        if run_id is None:
            continue
        c = per_step[step]
        for name, key in (("sent", "sent_at"), ("delivered", "delivered_at"), ("opened", "read_at"),
                          ("clicked", "clicked_at"), ("failed", "failed_at")):
            c[name] += m[key] is not None
        if m["sent_at"] is not None:
            cost[m["currency"]] += m["cost"]
            touches[by_run[run_id].customer_id].append((m["sent_at"], step))
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    converted_runs: set[tuple[int, str]] = set()
    attributed = 0
    for o in order_rows:
        if o["status_group"] == "cancel":
            continue
        before = [t for t in touches.get(o["customer_id"], ()) if t[0] <= o["created_at"] <= t[0] + window]
        if not before:
            continue
        _, step = max(before)
        attributed += 1
        revenue[o["currency"]] += o["total"]
        converted_runs.add((o["customer_id"], step))
    for _customer, step in converted_runs:
        per_step[step]["converted"] += 1
    converted = len({c for c, _ in converted_runs})
    entered = len(runs)
    total_cost = {k: str(v) for k, v in sorted(cost.items())}
    out_steps = []
    for sid in order:
        c = per_step.get(sid, Counter())
        row: dict[str, Any] = {"step": sid, **{k: c.get(k, 0) for k in ("reached", "sent", "delivered", "opened",
                                                                         "clicked", "failed", "converted")},
                               "outcomes": dict(sorted(outcomes.get(sid, Counter()).items()))}
        if c.get("sent"):
            row["open_rate"] = c["opened"] / c["sent"]
            row["click_rate"] = c["clicked"] / c["sent"]
        out_steps.append(row)
    states = Counter(r.state for r in runs)
    exits = Counter(r.exit_reason for r in runs if r.state == "exited")
    return {
        "entered": entered, "states": dict(sorted(states.items())), "exits": dict(sorted(exits.items())),
        "steps": out_steps, "converted": converted, "conversion_rate": converted / entered if entered else None,
        "orders": attributed, "revenue": {k: str(v) for k, v in sorted(revenue.items())}, "cost": total_cost,
        "cost_per_conversion": {k: str((v / converted).quantize(Decimal("0.01"))) for k, v in sorted(cost.items())}
        if converted else {},
        "attribution": ATTRIBUTION, "window_days": window.days, "benchmarks": BENCHMARKS,
    }


def uplift(runs: list[Run], steps: list[Step], order_rows: list[dict[str, Any]], *, split: str,
           window: timedelta) -> dict[str, Any]:
    """Pure: per arm of a split (and its holdout), customers and those who ordered within `window` after the split;
    each arm's conversion minus the holdout's with a 95% confidence interval (normal approximation)."""
    by_run = {r.id: r for r in runs}
    at_split = {s.run_id: (s.outcome.removeprefix("arm:"), s.at) for s in steps if s.step == split}
    ordered: dict[int, list[datetime]] = defaultdict(list)
    for o in order_rows:
        if o["status_group"] != "cancel":
            ordered[o["customer_id"]].append(o["created_at"])
    groups: dict[str, list[bool]] = defaultdict(list)
    for run_id, (arm, at) in at_split.items():
        times = ordered.get(by_run[run_id].customer_id, ())
        groups[arm].append(any(at <= t <= at + window for t in times))
    out: dict[str, Any] = {"split": split, "arms": {}}
    hold = groups.get("holdout", [])
    p0 = sum(hold) / len(hold) if hold else None
    for arm, got in sorted(groups.items()):
        n, k = len(got), sum(got)
        p = k / n
        row: dict[str, Any] = {"customers": n, "converted": k, "conversion_rate": p}
        if arm != "holdout" and p0 is not None:
            se = math.sqrt(p * (1 - p) / n + p0 * (1 - p0) / len(hold))
            row["uplift"] = p - p0
            row["ci95"] = [p - p0 - Z95 * se, p - p0 + Z95 * se]
        out["arms"][arm] = row
    return out


def report(session: Session, *, journey: Journey, version: int | None = None, window_days: int = 7
           ) -> dict[str, Any]:
    versions = {v.id: v for v in session.scalars(select(JourneyVersion).where(JourneyVersion.journey_id == journey.id))}
    chosen = [v for v in versions.values() if version is None or v.version == version]
    ids = [v.id for v in chosen]
    q = select(JourneyRun.id, JourneyRun.customer_id, JourneyRun.state, JourneyRun.exit_reason,
               JourneyRun.entered_at).where(JourneyRun.journey_id == journey.id, JourneyRun.version_id.in_(ids))
    runs = [Run(*r) for r in session.execute(q)]
    q = (select(JourneyStep.run_id, JourneyStep.step, JourneyStep.kind, JourneyStep.outcome, JourneyStep.detail,
                JourneyStep.at).where(JourneyStep.journey_id == journey.id, JourneyStep.version_id.in_(ids))
         .order_by(JourneyStep.id))
    steps = [Step(*r) for r in session.execute(q)]
    cascade_runs = [s.detail["cascade_run_id"] for s in steps if s.kind == "send" and s.detail
                    and s.detail.get("cascade_run_id")]
    messages = messaging.messages_of_runs(session, run_ids=cascade_runs)
    since = min((r.entered_at for r in runs), default=None)
    order_rows = orders.of_customers(session, customer_ids=[r.customer_id for r in runs], since=since) if since else []
    order: list[str] = []
    for v in sorted(chosen, key=lambda v: v.version):
        order += [s["id"] for s in v.definition["steps"] if s["id"] not in order]
    window = timedelta(days=window_days)
    out = funnel(runs, steps, messages, order_rows, order=order, window=window)
    splits = sorted({s["id"] for v in chosen for s in v.definition["steps"] if s["type"] == "split"})
    out["splits"] = [uplift(runs, steps, order_rows, split=s, window=window) for s in splits]
    return {"journey_id": journey.id, "name": journey.name, "version": version, **out}
