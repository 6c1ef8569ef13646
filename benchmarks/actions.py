"""Trigger actions one by one (`handler`) against set-based (`many`): µs per item.

`python -m benchmarks.actions [--items 500] [--rounds 7] [--backends sqlite,postgres] [--pg-dsn DSN]`

Per backend: a fresh database with one site, two managers and `items` customers, each with one order (written
untimed through the services) and a trigger to act for. Then, in `rounds` alternating rounds, each in its own
session and transaction (timed from the first action to the commit, the session's identity map empty at the
start as for a new batch):
  * add_tag: one order-target `add_tag` per order, a new tag each round (so every order changes: an UPDATE,
    a history row and an `order_changed` event per item);
  * create_task: one `create_task` per order, assignee `order_manager`, title `Call about {order.number}`.
`handler` is called once per order; `many` once with all of them. The median round is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timezone
from typing import Any

from benchmarks.targets import DEFAULT_PG_DSN, fresh
from retento.bootstrap import bootstrap
from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.migrate import migrate
from retento.orders import service as orders
from retento.sites import service as sites
from retento.sites.schemas import ManagerCreate, SiteCreate
from retento.triggers import actions as registry, service as triggers

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
API = ChangeContext(Source.API, ActorType.API_KEY, "bench")


def setup(app: Any, items: int) -> tuple[list[dict[str, Any]], int]:
    """(order id, number, customer id) of each order, and the trigger id."""
    with transaction(app.sessions) as s:
        sites.create_site(s, data=SiteCreate(code="shop", name="Shop"), now=NOW)
        managers = [sites.create_manager(s, data=ManagerCreate(name=n), now=NOW).id for n in "AB"]
        made = customers.create_many(s, items=[customers.parse_create(s, {"site": "shop", "email": f"c{n}@x.ru"})
                                               for n in range(items)], ctx=API, now=NOW)
        cids = [c.id for c in made]
        raws = [{"site": "shop", "customer": {"id": cid}, "manager_id": managers[n % 2],
                 "items": [{"name": "Thing", "price": "10.00"}]} for n, cid in enumerate(cids)]
        oids = orders.create_many(s, items=orders.parse_create_many(raws), ctx=API, now=NOW)
        tid = triggers.create_trigger(s, raw={"name": "bench", "events": ["order_changed"],
                                              "actions": [{"type": "add_tag", "tag": "x"}]}, now=NOW).id
        numbers = dict(s.execute(orders.select(orders.Order.id, orders.Order.number)
                                 .where(orders.Order.id.in_(oids))).all())
    return [{"order_id": o, "customer_id": c, "number": numbers[o]} for o, c in zip(oids, cids, strict=True)], tid


def contexts(session: Any, runs: list[dict[str, Any]], tid: int, n: int) -> list[registry.ActionContext]:
    ctx = ChangeContext(Source.TRIGGER, ActorType.TRIGGER, str(tid), depth=1)
    return [registry.ActionContext(session=session, now=NOW, ctx=ctx, trigger_id=tid, trigger_name="bench",
                                   key=f"trigger:{tid}:order:{r['order_id']}:{n}", event={"id": n},
                                   order_id=r["order_id"], customer_id=r["customer_id"],
                                   variables={"order": {"number": r["number"]}, "event": {"id": n}})
            for r in runs]


def one_round(app: Any, runs: list[dict[str, Any]], tid: int, action: str, mode: str, n: int) -> float:
    spec = app.parts.actions[action]
    if action == "add_tag":
        params = registry.TagAction(tag=f"t{n}", target="order")
    else:
        params = registry.CreateTask(title="Call about {order.number}", assignee="order_manager")
    started = time.perf_counter()
    with transaction(app.sessions) as s:
        cs = contexts(s, runs, tid, n)
        if mode == "handler":
            for a in cs:
                spec.handler(a, params)
        else:
            spec.many(cs, [params] * len(cs))
    return time.perf_counter() - started


def measure(backend: str, items: int, rounds: int, pg_dsn: str) -> list[dict[str, Any]]:
    out = []
    with fresh(backend, pg_dsn) as target:
        app = bootstrap(Settings(database_url=target.url), clock=FrozenClock(NOW.isoformat()))
        try:
            migrate(app)
            runs, tid = setup(app, items)
            n = 0
            for action in ("add_tag", "create_task"):
                times: dict[str, list[float]] = {"handler": [], "many": []}
                for _ in range(rounds):
                    for mode in ("handler", "many"):
                        n += 1
                        times[mode].append(one_round(app, runs, tid, action, mode, n))
                single, many = (statistics.median(times[m]) / items * 1e6 for m in ("handler", "many"))
                out.append({"backend": target.version, "action": action, "handler_us": single, "many_us": many})
        finally:
            app.close()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=500)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--pg-dsn", default=os.environ.get("RETENTO_TEST_PG_DSN", DEFAULT_PG_DSN))
    args = p.parse_args(argv)
    load = os.getloadavg()
    rows = [r for b in args.backends.split(",") for r in measure(b, args.items, args.rounds, args.pg_dsn)]
    print(f"{args.items} items, median of {args.rounds} rounds; load average before: "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| backend | action | handler one by one, µs/item | many, µs/item | speed-up |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['action']} | {r['handler_us']:.0f} | {r['many_us']:.0f} | "
              f"{r['handler_us'] / r['many_us']:.1f}× |")


if __name__ == "__main__":
    main()
