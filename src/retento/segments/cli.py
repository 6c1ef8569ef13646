"""`retento segments ...`, `retento rfm` and `retento cohorts` (thin wrappers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table

from retento.cmdline import open_app
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.core.jsonable import jsonable
from retento.segments import analytics, rollups, service
from retento.sites.service import get_site

segments_app = typer.Typer(help="Segments: dynamic (rules) and static (lists).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def _run(fn: Callable[[Any, Any], T], *, up_to_date: bool = False) -> T:
    """fn(session, now) in one transaction; bad input is a message and exit code 2, nothing is stored.
    `up_to_date`: first bring the derived data (rollups, segments) up to date, as a worker would."""
    app = open_app(log=False)
    try:
        if up_to_date:
            with console.status("updating rollups and segments"):
                app.bring_up_to_date()
        with transaction(app.sessions) as s:
            return fn(s, app.clock.now())
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    finally:
        app.close()


def _load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        err.print(f"[red]error:[/red] {path}: {exc.strerror}")
        raise typer.Exit(2) from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        err.print(f"[red]error:[/red] {path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}")
        raise typer.Exit(2) from None


@segments_app.command("apply")
def apply(path: Annotated[Path, typer.Argument(help="YAML or JSON: one segment, or {site, segments: [...]}")]) -> None:
    """Create or update segments from a file (same schema as the API)."""
    raw = _load(path)
    done = _run(lambda s, now: [(seg.id, seg.code, seg.size, created)
                                for seg, created in service.apply_definitions(s, raw=raw, now=now)])
    for sid, code, size, created in done:
        console.print(f"segment {code} {'created' if created else 'updated'} (id {sid}): {size} members")


@segments_app.command("list")
def list_(site: Annotated[str | None, typer.Option(help="Only this site")] = None) -> None:
    """List segments with their size."""
    rows = _run(lambda s, _now: [(x.id, x.code, x.name, x.kind, x.size, x.computed_at)
                                 for x in service.list_segments(s, site=site)])
    table = Table("id", "code", "name", "kind", "members", "computed")
    for sid, code, name, kind, size, at in rows:
        table.add_row(str(sid), code, name, kind, f"{size:,}", at.strftime("%Y-%m-%d %H:%M") if at else "")
    console.print(table)


@segments_app.command("preview")
def preview(site: str, path: Annotated[Path, typer.Argument(help="YAML or JSON file with a rule tree")],
            sample: Annotated[int, typer.Option(min=0, max=100)] = 10) -> None:
    """Count who matches a rule tree, without storing a segment."""
    raw = _load(path)
    out = _run(lambda s, now: service.preview(s, site=site, raw_rules=raw.get("rules", raw) if isinstance(
        raw, dict) else raw, now=now, sample=sample))
    console.print(f"{out['count']:,} customers match")
    for c in out["sample"]:
        console.print(f"  {c['id']}  {c['email'] or ''}  {c['first_name'] or ''} {c['last_name'] or ''}")


@segments_app.command("recompute")
def recompute(site: Annotated[str | None, typer.Option(help="Only this site")] = None) -> None:
    """Full recompute of every active dynamic segment (rollups first)."""
    def go(s: Any, now: Any) -> dict[int, tuple[int, int]]:
        site_id = get_site(s, site).id if site else None
        with console.status("rebuilding order rollups"):
            rollups.refresh(s, site_id=site_id)
        with console.status("recomputing segments"):
            return service.recompute_site(s, site_id=site_id, now=now)
    for sid, (entered, left) in _run(go).items():
        console.print(f"segment {sid}: +{entered} -{left}")


@segments_app.command("members")
def members(segment_id: int, csv_path: Annotated[Path, typer.Argument(help="CSV with customer_id / external_id / email")],
            remove: Annotated[bool, typer.Option(help="Remove instead of add")] = False) -> None:
    """Add (or remove) the customers of a CSV file to a static segment."""
    text = csv_path.read_text(encoding="utf-8")
    entered, left = _run(lambda s, now: service.change_members(
        s, segment=service.get(s, segment_id), data=service.parse_members_csv(text), add=not remove, now=now))
    console.print(f"{entered} added, {left} removed")


def rfm(
    site: Annotated[str, typer.Argument(help="Site code")],
    ltv: Annotated[bool, typer.Option(help="Also fit BG/NBD + Gamma-Gamma and store predictions and LTV")] = False,
    segments: Annotated[bool, typer.Option("--segments", help="Create a segment per cell (rfm-<cell>)")] = False,
) -> None:
    """Compute RFM scores and cells for a site, store them, and print the cell table."""
    def go(s: Any, now: Any) -> dict[str, Any]:
        site_id = get_site(s, site).id
        with console.status("scoring customers"):
            out = analytics.compute_rfm(s, site_id=site_id, now=now)
        if ltv:
            with console.status("fitting BG/NBD and Gamma-Gamma"):
                out["ltv"] = analytics.compute_ltv(s, site_id=site_id, now=now)
            out["cells"] = analytics.cell_table(s, site_id=site_id)
        if segments:
            out["segments"] = analytics.ensure_cell_segments(s, site=site, now=now)
        return out
    out = _run(go, up_to_date=True)
    console.print("cut points: " + "; ".join(f"{k} {v}" for k, v in out["cuts"].items()))
    table = Table("cell", "customers", "share", "days since last", "frequency", "monetary", "expected purchases",
                  "LTV", title=f"RFM, site {site}")
    for c in out["cells"]:
        table.add_row(c["cell"], f"{c['customers']:,}", f"{c['share']:.1%}", f"{c['avg_days_since_last']}",
                      f"{c['avg_frequency']}", f"{c['avg_monetary']}", _blank(c["expected_purchases"]),
                      _blank(c["ltv"]))
    console.print(table)
    if "ltv" in out:
        console.print(f"fitted: {out['ltv']['params']}")
    if out.get("segments"):
        console.print("segments created: " + ", ".join(out["segments"]))


def _blank(value: Any) -> str:
    return "" if value is None else f"{value:,}"


def cohorts(
    site: Annotated[str, typer.Argument(help="Site code")],
    threshold: Annotated[int | None, typer.Option(help="Set the site's threshold override (days) first")] = None,
    auto: Annotated[bool, typer.Option("--auto", help="Drop the override: use the computed median")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON")] = False,
) -> None:
    """Print the monthly lifecycle table (new / active / sleeping) with the four figures."""
    def go(s: Any, now: Any) -> dict[str, Any]:
        if threshold is not None or auto:
            analytics.set_threshold(s, site=site, days=None if auto else threshold, now=now)
        return analytics.cohort_report(s, site=site, now=now)
    report = _run(go)
    if as_json:
        print(json.dumps(jsonable(report), ensure_ascii=False, indent=1))
        return
    th = report["threshold"]
    console.print(f"threshold {th['threshold_days']:g} days (median between purchases: "
                  f"{'-' if th['computed_median_days'] is None else format(th['computed_median_days'], 'g')}, "
                  f"override: {th['override'] or '-'})")
    table = Table("month", "new", "active", "sleeping", "orders", "new→active", "orders/active", "reactivated orders",
                  "churn active", "initiatives", title=f"lifecycle cohorts, site {site}")
    for m in report["months"]:
        table.add_row(m["month"] + (" *" if m["provisional"] else ""), str(m["new"]), str(m["active"]),
                      str(m["sleeping"]), str(m["orders"]), _pct(m["conversion_new_active"]),
                      _num(m["orders_per_active"]), str(m["reactivated_orders"]), _pct(m["churn_active"]),
                      ", ".join(i["name"] for i in m["initiatives"]))
    console.print(table)
    console.print("* month not over yet")
    ct = Table("cohort", "customers", "became active", "conversion", title="acquisition cohorts")
    for c in report["cohorts"]:
        ct.add_row(c["month"] + (" (provisional)" if c["provisional"] else ""), str(c["customers"]),
                   str(c["became_active"]), _pct(c["conversion"]))
    console.print(ct)


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.1%}"


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"
