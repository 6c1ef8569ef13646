"""`retento triggers ...`: apply YAML definitions, install templates, pending runs, run log, dry run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console

from retento.cmdline import Col, Format, FormatOption, Rows, emit, fail, open_app, run_service
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.triggers import explain, service, templates
from retento.triggers.schemas import MAX_DEBUG_MINUTES, DryRunIn
from retento.triggers.wiring import engine_of

app = typer.Typer(help="Triggers: event -> condition -> actions, now or later. / Триггеры.", no_args_is_help=True)
console = Console()


def _ctx():
    return open_app(), transaction, service, fail, run_service


def _documents(path: Path) -> list[Any]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        fail(f"{path}: {exc}", 2)
    out = []
    for d in docs:
        out.extend(d if isinstance(d, list) else d.get("triggers", [d]) if isinstance(d, dict) else [d])
    return out


@app.command("apply")
def apply(file: Annotated[Path, typer.Argument(help="YAML file: one trigger, a list, or {triggers: [...]}")]) -> None:
    """Create or update triggers from a YAML file (same schema as the API). All or nothing."""
    a, transaction, service, fail, _ = _ctx()
    docs = _documents(file)
    if not docs:
        fail(f"{file}: no trigger definitions found", 2)

    with transaction(a.sessions) as s:
        for n, raw in enumerate(docs):
            try:
                trigger, created = service.apply(s, raw=raw, now=a.clock.now())
            except DomainError as exc:
                name = raw.get("name") if isinstance(raw, dict) else None
                fail(f"{file} trigger {n + 1}{f' ({name})' if name else ''}: {exc.message}", 2)
            console.print(f"trigger {trigger.name} {'created' if created else 'updated'} (id {trigger.id})")


@app.command("list")
def list_(fmt: FormatOption = Format.table) -> None:
    """List triggers."""
    a, transaction, service, _, _ = _ctx()
    now = a.clock.now()
    with transaction(a.sessions) as s:
        rows = [{"id": t.id, "name": t.name, "active": t.active, "events": t.definition["events"],
                 "delay": t.definition.get("delay"), "pending": t.pending,
                 "debug_until": t.debug_until if t.debug_until and t.debug_until > now else None}
                for t in service.list_triggers(s)]
    emit(fmt, Rows("triggers", [Col("id", kind="int"), Col("name"), Col("active", show=_yes), Col("events"),
                                Col("delay", empty="-", show=json.dumps), Col("pending", kind="int"),
                                Col("debug_until", "debug log until", kind="time", empty="-")], rows))


def _yes(value: bool) -> str:
    return "yes" if value else "no"


@app.command("templates")
def templates_(fmt: FormatOption = Format.table) -> None:
    """List ready-made triggers and their parameters."""
    rows = [{"name": name, "title": t["title"], "title_ru": t["title_ru"],
             "params": {k: v.get("default") for k, v in t.get("params", {}).items()}}
            for name, t in ((name, templates.load(name)) for name in templates.names())]
    emit(fmt, Rows("templates", [Col("name"), Col("title"), Col("title_ru", "название"),
                                 Col("params", "parameters (defaults)",
                                     show=lambda p: ", ".join(f"{k}={v}" for k, v in p.items()))], rows))


@app.command("install-template")
def install_template(
    name: str,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Parameter as key=value (repeatable)")] = None,
    trigger_name: Annotated[str | None, typer.Option("--name", help="Name of the installed trigger")] = None,
) -> None:
    """Install a ready-made trigger, e.g. `retento triggers install-template review-request --set days=5`."""
    a, transaction, service, fail, run_service = _ctx()
    params = {}
    for item in set_ or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            fail(f"--set {item!r}: expected key=value", 2)
        params[key] = yaml.safe_load(value) if value else ""
    with transaction(a.sessions) as s:
        trigger, created = run_service(lambda: service.install_template(
            s, name=name, params=params, trigger_name=trigger_name, now=a.clock.now()))
        console.print(f"template {name} {'installed' if created else 're-installed'} as trigger "
                      f"{trigger.name} (id {trigger.id})")


@app.command("switch")
def switch(trigger: str, on: Annotated[bool, typer.Option("--on/--off")]) -> None:
    """Switch a trigger on or off (by id or name)."""
    a, transaction, service, _, run_service = _ctx()
    with transaction(a.sessions) as s:
        t = run_service(lambda: service.set_active(s, trigger=service.find_trigger(s, trigger), active=on,
                                                   now=a.clock.now()))
        console.print(f"trigger {t.name} is {'on' if t.active else 'off'}")


@app.command("debug")
def debug(
    trigger: Annotated[str, typer.Argument(help="Trigger id or name / id или имя триггера")],
    minutes: Annotated[int, typer.Option(min=0, max=MAX_DEBUG_MINUTES,
                                         help="How long; 0 switches it off / Сколько минут; 0 — выключить")] = 30,
) -> None:
    """Log every evaluation of a trigger (matched or not, with the false part) for a while; read it with
    `retento triggers runs --trigger NAME`. / Записывать каждую проверку триггера в журнал на время."""
    a, transaction, service, _, run_service = _ctx()
    with transaction(a.sessions) as s:
        t = run_service(lambda: service.set_debug(s, trigger=service.find_trigger(s, trigger), minutes=minutes,
                                                  now=a.clock.now()))
        if t.debug_until is None:
            console.print(f"trigger {t.name}: debug log off / журнал отладки выключен")
        else:
            until = t.debug_until.strftime("%Y-%m-%d %H:%M")
            console.print(f"trigger {t.name}: every evaluation is logged until {until} UTC "
                          f"/ каждая проверка записывается в журнал до {until} UTC")


@app.command("pending")
def pending(
    trigger: Annotated[str | None, typer.Option(help="Trigger id or name")] = None,
    order: Annotated[int | None, typer.Option(help="Order id")] = None,
    customer: Annotated[int | None, typer.Option(help="Customer id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    fire: Annotated[int | None, typer.Option(help="Fire this pending run now (condition re-checked, as when due)")]
    = None,
    fmt: FormatOption = Format.table,
) -> None:
    """What will fire, when and for whom; `--fire ID` fires one run now to try a delayed trigger out."""
    a, transaction, service, _, run_service = _ctx()
    if fire is not None:
        fired = run_service(lambda: service.fire_timer(a.sessions, engine=engine_of(a), timer_id=fire))
        console.print(f"run {fire} fired: {fired.timer.state}" + (f" ({fired.timer.reason})" if fired.timer.reason
                                                                  else ""))
        for x in fired.run.actions if fired.run else ():
            console.print(f"  {x['action']}: {'ok' if x['ok'] else 'failed'}")
        return
    with transaction(a.sessions) as s:
        tid = run_service(lambda: service.find_trigger(s, trigger).id) if trigger else None
        filters = {"trigger_id": tid, "order_id": order, "customer_id": customer}
        rows = [{"id": t.id, "trigger_id": t.trigger_id, "due_at": t.due_at, "entity": t.entity,
                 "entity_id": t.entity_id, "event_id": t.event_id} for t in service.pending(s, **filters, limit=limit)]
        total = service.count_pending(s, **filters)
    emit(fmt, Rows("pending", [Col("id", "run", kind="int"), Col("trigger_id", "trigger", kind="int"),
                               Col("due_at", "due (UTC)", kind="time"), Col("entity"),
                               Col("entity_id", "entity id", kind="int"), Col("event_id", "event", kind="int")], rows),
         notes=[f"showing {len(rows)} of {total} pending runs"])


@app.command("cancel")
def cancel(
    run: Annotated[int | None, typer.Option(help="Cancel this pending run")] = None,
    trigger: Annotated[str | None, typer.Option(help="Cancel every pending run of this trigger")] = None,
) -> None:
    """Cancel one pending run, or all of a trigger."""
    a, transaction, service, fail, run_service = _ctx()
    if (run is None) == (trigger is None):
        fail("give exactly one of --run or --trigger", 2)
    with transaction(a.sessions) as s:
        if run is not None:
            run_service(lambda: service.cancel_timer(s, timer_id=run, now=a.clock.now()))
            console.print(f"run {run} cancelled")
        else:
            n = run_service(lambda: service.cancel_pending(s, trigger=service.find_trigger(s, trigger),
                                                           now=a.clock.now()))
            console.print(f"{n} pending runs cancelled")


@app.command("runs")
def runs(
    order: Annotated[int | None, typer.Option(help="Order id")] = None,
    customer: Annotated[int | None, typer.Option(help="Customer id")] = None,
    trigger: Annotated[str | None, typer.Option(help="Trigger id or name")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    fmt: FormatOption = Format.table,
) -> None:
    """The run log: why did (or didn't) a trigger fire?"""
    a, transaction, service, _, run_service = _ctx()
    with transaction(a.sessions) as s:
        tid = run_service(lambda: service.find_trigger(s, trigger).id) if trigger else None
        rows = [{"at": r.at, "trigger_id": r.trigger_id, "phase": r.phase, "outcome": r.outcome, "reason": r.reason,
                 "actions": r.actions}
                for r in service.runs(s, order_id=order, customer_id=customer, trigger_id=tid, limit=limit)]
    emit(fmt, Rows("runs", [Col("at", "time (UTC)", kind="timestamp"), Col("trigger_id", "trigger", kind="int"),
                            Col("phase"), Col("outcome"), Col("reason"),
                            Col("actions", show=lambda acts: ", ".join(
                                x["action"] + ("" if x["ok"] else " (failed)") for x in acts))], rows))


EXPLAINED = (Col("event_id", "event", kind="int"), Col("occurred_at", "time", kind="timestamp"), Col("type"),
             Col("outcome", show=lambda o: explain.OUTCOMES.get(o, o)), Col("why"))


@app.command("explain")
def explain_(
    trigger: Annotated[str, typer.Argument(help="Trigger id or name / id или имя триггера")],
    order: Annotated[int | None, typer.Option(help="Order id / id заказа")] = None,
    customer: Annotated[int | None, typer.Option(help="Customer id / id клиента")] = None,
    event: Annotated[int | None, typer.Option(help="One event id / id события")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="The last N events / последние N событий")] = 100,
    fmt: FormatOption = Format.table,
) -> None:
    """Why didn't it fire? Each event of the order or customer evaluated again: which part of the condition was
    false and what it saw, run limits, site and event filters, delayed runs. / Почему триггер не сработал."""
    a, transaction, service, _, run_service = _ctx()
    with transaction(a.sessions) as s:
        out = run_service(lambda: service.explain(
            s, trigger=service.find_trigger(s, trigger), order_id=order, customer_id=customer, event_id=event,
            limit=limit, max_depth=a.settings.trigger_max_depth))
    rows = [{"event_id": e.event_id, "occurred_at": e.occurred_at, "type": e.type + (f" {e.name}" if e.name else ""),
             "outcome": e.outcome, "why": _why(e)} for e in out.events]
    emit(fmt, Rows("events", EXPLAINED, rows, title=f"trigger {out.name} (id {out.trigger_id}), {out.entity} "
                                                    f"{out.entity_id}"),
         notes=[out.note, "Каждое событие проверено заново: какая часть условия ложна и какие значения она видела."],
         data=out.model_dump(mode="json"))


def _why(e: Any) -> str:
    """The reason, and for a false part what its sub-expressions gave."""
    seen = "; ".join(f"{k} = {json.dumps(v, ensure_ascii=False, default=str)}" for k, v in e.values.items())
    return e.reason + (f" (saw {seen})" if seen else "") + (f"; {e.limit}" if e.limit and e.limit not in e.reason
                                                             else "")


@app.command("dry-run")
def dry_run(
    target: Annotated[str, typer.Argument(help="Trigger id or name, or a YAML file with one definition")],
    over: Annotated[str, typer.Option(help="events, orders or customers")] = "events",
    limit: Annotated[int, typer.Option(min=1, max=100000, help="How many recent events / entities")] = 1000,
) -> None:
    """How many of the last N events (or current orders / customers) would match, with a sample."""
    a, transaction, service, fail, run_service = _ctx()
    try:
        options = DryRunIn(over=over, limit=limit)
    except ValidationError as exc:
        fail(DomainError.from_pydantic(exc).message, 2)
    path = Path(target)
    with transaction(a.sessions) as s:
        raw = _documents(path)[0] if path.suffix in (".yaml", ".yml") else None
        if raw is None:
            raw = run_service(lambda: service.find_trigger(s, target)).definition
        result = run_service(lambda: service.dry_run(s, raw=raw, options=options, now=a.clock.now()))
    console.print(f"evaluated {result.evaluated}, matched {result.matched}")
    for row in result.sample:
        console.print(f"  match: {row}")
    for reason, n in result.reasons.items():
        console.print(f"  {n} × {reason}")
