"""`retento journeys ...`: apply YAML definitions (the API's schema), list and show journeys, their runs, switch
them, migrate runs to the current version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from retento.cmdline import Col, Format, FormatOption, Rows, emit, fail, open_app, run_service
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.journeys import reports, service

app = typer.Typer(help="Journeys: multi-step chains over days. / Цепочки коммуникаций.", no_args_is_help=True)
console = Console()


def _documents(path: Path) -> list[Any]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        fail(f"{path}: {exc}", 2)
    out: list[Any] = []
    for d in docs:
        out.extend(d if isinstance(d, list) else d.get("journeys", [d]) if isinstance(d, dict) else [d])
    return out


@app.command("apply")
def apply(file: Annotated[Path, typer.Argument(help="YAML file: one journey, a list, or {journeys: [...]}")]) -> None:
    """Create journeys, or save new versions of changed ones, from a YAML file (the API's schema). All or nothing:
    one wrong definition stores none. / Создать или обновить цепочки из YAML-файла."""
    a = open_app()
    docs = _documents(file)
    if not docs:
        fail(f"{file}: no journey definitions found", 2)
    done = []
    with transaction(a.sessions) as s:
        for n, raw in enumerate(docs):
            try:
                journey, outcome = service.apply(s, raw=raw, now=a.clock.now())
            except DomainError as exc:
                name = raw.get("name") if isinstance(raw, dict) else None
                fail(f"{file} journey {n + 1}{f' ({name})' if name else ''}: {exc.message}", 2)
            done.append(f"journey {journey.name} {outcome} (id {journey.id}, version {journey.version})")
    for line in done:
        console.print(line)


@app.command("list")
def list_(site: Annotated[str | None, typer.Option(help="Only this site's journeys")] = None,
          fmt: FormatOption = Format.table) -> None:
    """List journeys with their runs per state."""
    a = open_app()
    with transaction(a.sessions) as s:
        journeys = run_service(lambda: service.list_journeys(s, site=site))
        counts = service.run_counts(s, [j.id for j in journeys])
        rows = [{"id": j.id, "name": j.name, "active": j.active, "version": j.version,
                 "active_runs": counts[j.id].get("active", 0),
                 **{k: counts[j.id].get(k, 0) for k in ("finished", "exited", "failed")}} for j in journeys]
    emit(fmt, Rows("journeys", [Col("id", kind="int"), Col("name"), Col("active", show=lambda v: "yes" if v else "no"),
                                Col("version", kind="int"), Col("active_runs", "inside", kind="int"),
                                Col("finished", kind="int"), Col("exited", kind="int"), Col("failed", kind="int")],
                   rows))


@app.command("show")
def show(journey: Annotated[str, typer.Argument(help="Journey id or name")],
         site: Annotated[str | None, typer.Option(help="The site, when the name is used on several")] = None) -> None:
    """Print a journey's current definition as YAML."""
    a = open_app()
    with transaction(a.sessions) as s:
        out = run_service(lambda: service.out(s, service.find(s, journey, site=site)))
    console.print(f"# journey {out.id}, version {out.version} of {out.versions}; runs: {out.runs}")
    console.print(yaml.safe_dump(out.definition, allow_unicode=True, sort_keys=False), markup=False)


@app.command("switch")
def switch(journey: str, on: Annotated[bool, typer.Option("--on/--off")],
           site: Annotated[str | None, typer.Option()] = None) -> None:
    """Switch a journey on or off (off: nobody new enters; customers inside go on)."""
    a = open_app()
    with transaction(a.sessions) as s:
        j = run_service(lambda: service.switch(s, journey=service.find(s, journey, site=site), active=on,
                                               now=a.clock.now()))
        console.print(f"journey {j.name} is {'on' if j.active else 'off'}")


@app.command("migrate")
def migrate(journey: str, from_version: Annotated[int | None, typer.Option(min=1)] = None,
            site: Annotated[str | None, typer.Option()] = None) -> None:
    """Move customers inside older versions onto the current version (each stays at the step of the same id)."""
    a = open_app()
    with transaction(a.sessions) as s:
        got = run_service(lambda: service.migrate(s, journey=service.find(s, journey, site=site),
                                                  from_version=from_version))
    console.print(f"moved {got['moved']} runs; {got['left']} stay on their version (their step is gone)")


@app.command("runs")
def runs(journey: str, state: Annotated[str | None, typer.Option()] = None,
         customer: Annotated[int | None, typer.Option(min=1)] = None, limit: Annotated[int, typer.Option(min=1)] = 100,
         site: Annotated[str | None, typer.Option()] = None, fmt: FormatOption = Format.table) -> None:
    """Runs of a journey with the steps they took."""
    a = open_app()
    with transaction(a.sessions) as s:
        j = run_service(lambda: service.find(s, journey, site=site))
        got = service.list_runs(s, journey_id=j.id, customer_id=customer, state=state, limit=limit)
    rows = [{**r.model_dump(exclude={"steps"}), "path": " > ".join(f"{x['step']}:{x['outcome']}" for x in r.steps)}
            for r in got]
    emit(fmt, Rows("runs", [Col("id", kind="int"), Col("customer_id", "customer", kind="int"), Col("version", kind="int"),
                            Col("state"), Col("step"), Col("due_at", kind="time", empty="-"),
                            Col("exit_reason", empty="-"), Col("path")], rows))


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


@app.command("report")
def report(journey: str, version: Annotated[int | None, typer.Option(min=1)] = None,
           window_days: Annotated[int, typer.Option(min=1, max=365)] = 7,
           site: Annotated[str | None, typer.Option()] = None, fmt: FormatOption = Format.table) -> None:
    """Funnel and money of a journey: per step reached / sent / opened / clicked / converted, exits, revenue by last
    touch within the window, cost per conversion, A/B uplift. / Воронка и деньги цепочки."""
    a = open_app()
    with transaction(a.sessions) as s:
        data = run_service(lambda: reports.report(s, journey=service.find(s, journey, site=site), version=version,
                                                  window_days=window_days))
    summary = {"entered": data["entered"], "converted": data["converted"],
               "conversion_rate": data["conversion_rate"], "orders": data["orders"],
               "revenue": ", ".join(f"{v} {k}" for k, v in data["revenue"].items()) or "0",
               "cost": ", ".join(f"{v} {k}" for k, v in data["cost"].items()) or "0",
               "cost_per_conversion": ", ".join(f"{v} {k}" for k, v in data["cost_per_conversion"].items()) or "-",
               "exits": ", ".join(f"{k}: {v}" for k, v in data["exits"].items()) or "-"}
    arms = [{"split": sp["split"], "arm": arm, **row, "ci95": row.get("ci95")}
            for sp in data["splits"] for arm, row in sp["arms"].items()]
    emit(fmt,
         Rows("summary", [Col("entered", kind="int"), Col("converted", kind="int"),
                          Col("conversion_rate", "conversion", kind="percent", empty="-"), Col("orders", kind="int"),
                          Col("revenue"), Col("cost"), Col("cost_per_conversion", "cost per conversion"),
                          Col("exits")], [summary], stacked=True),
         Rows("steps", [Col("step"), Col("reached", kind="int"), Col("sent", kind="int"), Col("delivered", kind="int"),
                        Col("opened", kind="int"), Col("clicked", kind="int"), Col("converted", kind="int"),
                        Col("open_rate", "open rate", kind="percent", empty="-")], data["steps"]),
         Rows("splits", [Col("split"), Col("arm"), Col("customers", kind="int"), Col("converted", kind="int"),
                         Col("conversion_rate", "conversion", kind="percent"),
                         Col("uplift", kind="percent", empty="-"),
                         Col("ci95", "95% interval", empty="-",
                             show=lambda v: f"{v[0]:+.2%} .. {v[1]:+.2%}")], arms),
         notes=[f"attribution: {data['attribution']} (window {data['window_days']} days)"], data=data)


@app.command("mechanics")
def mechanics_(fmt: FormatOption = Format.table) -> None:
    """Ready-made journeys. / Готовые механики."""
    emit(fmt, Rows("mechanics", [Col("name"), Col("title"), Col("title_ru", "название")], service.mechanic_list()))


@app.command("install")
def install(mechanic: str, site: Annotated[str, typer.Option(help="The site to install it on")],
            name: Annotated[str | None, typer.Option(help="The journey's name (default: the mechanic's)")] = None
            ) -> None:
    """Install a ready-made journey with its RU and EN templates and its cascades, e.g.
    `retento journeys install abandoned-cart --site shop`. / Установить готовую механику."""
    a = open_app()
    with transaction(a.sessions) as s:
        journey, outcome = run_service(lambda: service.install_mechanic(s, name=mechanic, site=site,
                                                                        journey_name=name, now=a.clock.now()))
        console.print(f"mechanic {mechanic} installed: journey {journey.name} {outcome} (id {journey.id}, "
                      f"version {journey.version})")
