"""`retento segments ...`, `retento rfm` and `retento cohorts` (thin wrappers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table

from retento import cmdline
from retento.cmdline import open_app
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.segments import analytics, cohorts as cohort_calc, rollups, service
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


@segments_app.command("sizes")
def sizes(segment_id: int,
          start: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD (default: the first day)")] = None,
          end: Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD (default: today, UTC)")] = None) -> None:
    """A segment's size at the end of each day / Размер сегмента на конец каждого дня."""
    def go(s: Any, now: Any) -> list[dict[str, Any]]:
        first, last = service.day_range(start, end)
        return service.sizes(s, segment=service.get(s, segment_id), today=now.date(), start=first, end=last)
    table = Table("date / дата", "size / размер")
    table.columns[1].justify = "right"
    for point in _run(go):
        table.add_row(point["date"], f"{point['size']:,}")
    console.print(table)


@segments_app.command("members")
def members(segment_id: int, csv_path: Annotated[Path, typer.Argument(help="CSV with customer_id / external_id / email")],
            remove: Annotated[bool, typer.Option(help="Remove instead of add")] = False) -> None:
    """Add (or remove) the customers of a CSV file to a static segment."""
    text = csv_path.read_text(encoding="utf-8")
    entered, left = _run(lambda s, now: service.change_members(
        s, segment=service.get(s, segment_id), data=service.parse_members_csv(text), add=not remove, now=now))
    console.print(f"{entered} added, {left} removed")


# Column titles in English and Russian (`--lang`, or RETENTO_LANG); CSV and JSON keep the keys.
class Lang(str, Enum):
    en = "en"
    ru = "ru"


LangOption = Annotated[Lang, typer.Option("--lang", envvar="RETENTO_LANG", case_sensitive=False,
                                          help="Language of the headings / язык заголовков")]
AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", help="Observation end, a UTC day YYYY-MM-DD: computed from the orders up to it, nothing stored")]
TITLES: dict[str, tuple[str, str]] = {
    "cell": ("cell", "ячейка"),
    "customers": ("customers", "клиентов"),
    "share": ("share of customers", "доля клиентов"),
    "days_since_last_purchase_mean": ("days since last purchase, mean", "дней с последней покупки, среднее"),
    "repeat_purchases_mean": ("repeat purchases (frequency), mean", "повторных покупок (frequency), среднее"),
    "repeat_purchase_value_mean": ("repeat purchase value, mean", "сумма повторной покупки, среднее"),
    "expected_purchases_mean": ("expected purchases in {days} d, per customer",
                                "ожидаемых покупок за {days} дн., на клиента"),
    "expected_purchases_total": ("expected purchases in {days} d, cell total",
                                 "ожидаемых покупок за {days} дн., всего в ячейке"),
    "ltv_mean": ("LTV {months} mo, per customer", "LTV за {months} мес., на клиента"),
    "ltv_total": ("LTV {months} mo, cell total", "LTV за {months} мес., всего в ячейке"),
    "customer_id": ("customer id", "id клиента"),
    "frequency": ("repeat purchases (frequency)", "повторных покупок (frequency)"),
    "recency": ("days first to last purchase (recency)", "дней от первой до последней покупки (recency)"),
    "age": ("days since first purchase (T)", "дней с первой покупки (T)"),
    "monetary": ("repeat purchase value, mean (monetary)", "сумма повторной покупки, среднее (monetary)"),
    "r": ("R", "R"), "f": ("F", "F"), "m": ("M", "M"),
    "expected_purchases": ("expected purchases in {days} d", "ожидаемых покупок за {days} дн."),
    "ltv": ("LTV {months} mo", "LTV за {months} мес."),
    "month": ("month", "месяц"),
    "provisional": ("month not over", "месяц не закончен"),
    "new": ("new", "новые"), "active": ("active", "активные"), "sleeping": ("sleeping", "спящие"),
    "orders": ("orders", "заказов"),
    "new_to_active": ("new → active", "новые → активные"),
    "new_to_sleeping": ("new → sleeping", "новые → спящие"),
    "sleeping_to_active": ("sleeping → active", "спящие → активные"),
    "active_to_sleeping": ("active → sleeping", "активные → спящие"),
    "conversion_new_active": ("conversion new → active", "конверсия новых в активные"),
    "orders_per_active": ("orders per active customer", "заказов на активного клиента"),
    "reactivated_orders": ("orders of sleeping customers", "заказов спящих клиентов"),
    "churn_active": ("churn out of active", "отток из активных"),
    "initiatives": ("initiatives", "инициативы"),
    "became_active": ("became active", "стали активными"),
    "conversion": ("conversion to active", "конверсия в активные"),
    "cohort_provisional": ("younger than the threshold", "моложе порога"),
}
TEXTS: dict[str, tuple[str, str]] = {
    "rfm": ("RFM, site {site}, as of {as_of}", "RFM, сайт {site}, на {as_of}"),
    "cuts": ("score cut points: days since last purchase {days}; repeat purchases {repeat}; repeat purchase value, "
             "{currency} [{value}]", "границы баллов: дней с последней покупки {days}; повторных покупок {repeat}; "
             "сумма повторной покупки, {currency} [{value}]"),
    "fitted": ("fitted: {params}", "параметры модели: {params}"),
    "created": ("segments created: {codes}", "созданы сегменты: {codes}"),
    "months": ("lifecycle by month, site {site}, as of {as_of}", "жизненный цикл по месяцам, сайт {site}, на {as_of}"),
    "cohorts": ("acquisition cohorts", "когорты по месяцу первой покупки"),
    "threshold": ("threshold {days:g} days (median between purchases: {median}, override: {override})",
                  "порог {days:g} дн. (медиана между покупками: {median}, задан вручную: {override})"),
}


def _col(key: str, lang: Lang, kind: Any = "text", *, currency: str | None = None, title_key: str | None = None,
         **fmt: Any) -> cmdline.Col:
    title = TITLES[title_key or key][lang is Lang.ru].format(**fmt)
    return cmdline.Col(key, title, kind, currency=currency)


def _text(key: str, lang: Lang, **fmt: Any) -> str:
    return TEXTS[key][lang is Lang.ru].format(**fmt)


def _day(text: str | None, option: str) -> date | None:
    try:
        return None if text is None else date.fromisoformat(text)
    except ValueError:
        err.print(f"[red]error:[/red] {option}: {text!r} is not a date: YYYY-MM-DD")
        raise typer.Exit(2) from None


def rfm(
    site: Annotated[str, typer.Argument(help="Site code")],
    ltv: Annotated[bool, typer.Option(help="Also fit BG/NBD + Gamma-Gamma: expected purchases and LTV")] = False,
    segments: Annotated[bool, typer.Option("--segments", help="Create a segment per cell (rfm-<cell>)")] = False,
    as_of: AsOfOption = None,
    customers: Annotated[bool, typer.Option("--customers", help="One row per customer instead of per cell")] = False,
    fmt: cmdline.FormatOption = cmdline.Format.table,
    lang: LangOption = Lang.en,
) -> None:
    """Compute RFM scores and cells for a site and print the cell table; stored, except with --as-of.
    / RFM-баллы и ячейки сайта; сохраняются, кроме расчёта на дату (--as-of)."""
    day = _day(as_of, "--as-of")
    if segments and day is not None:
        err.print("[red]error:[/red] --segments: cell segments read the stored scores; not with --as-of")
        raise typer.Exit(2)

    def go(s: Any, now: Any) -> dict[str, Any]:
        site_row = get_site(s, site)
        with console.status("scoring customers" + (" and fitting BG/NBD, Gamma-Gamma" if ltv else "")):
            out = analytics.rfm_report(s, site_id=site_row.id, now=now, as_of=day, ltv=ltv, customers=customers)
        if segments:
            out["segments"] = analytics.ensure_cell_segments(s, site=site, now=now)
        return {"site": site, "currency": site_row.currency, **out}
    out = _run(go, up_to_date=day is None)
    horizon = {"days": out["prediction_days"], "months": out["ltv_months"]}
    money = {"kind": "money", "currency": out["currency"]}
    if customers:
        columns = [_col("customer_id", lang), _col("frequency", lang, "int"), _col("recency", lang, "int"),
                   _col("age", lang, "int"), _col("monetary", lang, **money), _col("r", lang, "int"),
                   _col("f", lang, "int"), _col("m", lang, "int"), _col("cell", lang)]
        if ltv:
            columns += [_col("expected_purchases", lang, "number", **horizon), _col("ltv", lang, **money, **horizon)]
        table = cmdline.Rows("customers", columns, out["customers"])
    else:
        columns = [_col("cell", lang), _col("customers", lang, "int"), _col("share", lang, "percent"),
                   _col("days_since_last_purchase_mean", lang, "number"), _col("repeat_purchases_mean", lang, "number"),
                   _col("repeat_purchase_value_mean", lang, **money)]
        if any(c["expected_purchases_total"] is not None for c in out["cells"]):
            columns += [_col("expected_purchases_mean", lang, "number", **horizon),
                        _col("expected_purchases_total", lang, "number", **horizon)]
        if any(c["ltv_total"] is not None for c in out["cells"]):
            columns += [_col("ltv_mean", lang, **money, **horizon), _col("ltv_total", lang, **money, **horizon)]
        table = cmdline.Rows("cells", columns, out["cells"], title=_text("rfm", lang, site=site, as_of=out["as_of"]))
    cuts = out["cuts"]
    notes = [_text("cuts", lang, days=cuts["recency"], repeat=cuts["frequency"], currency=out["currency"],
                   value=", ".join(f"{Decimal(c) / 100:,.2f}" for c in cuts["monetary"]))]
    if "ltv" in out:
        notes.append(_text("fitted", lang, params=out["ltv"]["params"]))
    if out.get("segments"):
        notes.append(_text("created", lang, codes=", ".join(out["segments"])))
    cmdline.emit(fmt, table, notes=notes, data=None if customers else out)


def cohorts(
    site: Annotated[str, typer.Argument(help="Site code")],
    threshold: Annotated[int | None, typer.Option(help="Set the site's threshold override (days) first")] = None,
    auto: Annotated[bool, typer.Option("--auto", help="Drop the override: use the computed median")] = False,
    as_of: AsOfOption = None,
    first: Annotated[str | None, typer.Option("--from", help="First month shown, YYYY-MM")] = None,
    last: Annotated[str | None, typer.Option("--to", help="Last month shown, YYYY-MM")] = None,
    fmt: cmdline.FormatOption = cmdline.Format.table,
    lang: LangOption = Lang.en,
) -> None:
    """Lifecycle by month (new / active / sleeping): migrations, the four figures and initiatives on each month's
    row; acquisition cohorts. / Жизненный цикл по месяцам: переходы, четыре показателя, инициативы; когорты."""
    day = _day(as_of, "--as-of")
    months = {}
    for option, text in (("--from", first), ("--to", last)):
        try:
            months[option] = None if text is None else cohort_calc.parse_month(text)
        except ValueError as exc:
            err.print(f"[red]error:[/red] {option}: {exc}")
            raise typer.Exit(2) from None

    def go(s: Any, now: Any) -> dict[str, Any]:
        if threshold is not None or auto:
            analytics.set_threshold(s, site=site, days=None if auto else threshold, now=now)
        return analytics.cohort_report(s, site=site, now=now, as_of=day, first=months["--from"],
                                       last=months["--to"])
    report = _run(go, up_to_date=as_of is None)  # the threshold is read from the kept gap histogram
    table = fmt is cmdline.Format.table
    rows = [{**m, "month": m["month"] + (" *" if m["provisional"] and table else ""),
             "orders_per_active": m["orders_per_active"] if m["orders_per_active"] is None or not table else
             round(m["orders_per_active"], 2),
             "initiatives": [i["name"] for i in m["initiatives"]]} for m in report["months"]]
    month_cols = [_col("month", lang), _col("new", lang, "int"), _col("active", lang, "int"),
                  _col("sleeping", lang, "int"), _col("orders", lang, "int"),
                  *(_col(f"{a}_to_{b}", lang, "int") for a, b in analytics.MIGRATIONS),
                  _col("conversion_new_active", lang, "percent"), _col("orders_per_active", lang, "number"),
                  _col("reactivated_orders", lang, "int"), _col("churn_active", lang, "percent"),
                  _col("initiatives", lang)]
    if not table:
        month_cols.insert(1, _col("provisional", lang))
    cohort_rows = [{**c, "month": c["month"] + (" *" if c["provisional"] and table else "")}
                   for c in report["cohorts"]]
    cohort_cols = [_col("month", lang), _col("customers", lang, "int"), _col("became_active", lang, "int"),
                   _col("conversion", lang, "percent")]
    if not table:
        cohort_cols.append(_col("provisional", lang, title_key="cohort_provisional"))
    th = report["threshold"]
    median = "-" if th["computed_median_days"] is None else format(th["computed_median_days"], "g")
    notes = [_text("threshold", lang, days=th["threshold_days"], median=median, override=th["override"] or "-"),
             "* " + ("month not over yet; a cohort younger than the threshold" if lang is Lang.en else
                     "месяц не закончен; когорта моложе порога")]
    cmdline.emit(fmt, cmdline.Rows("months", month_cols, rows,
                                   title=_text("months", lang, site=site, as_of=report["as_of"])),
                 cmdline.Rows("cohorts", cohort_cols, cohort_rows, title=_text("cohorts", lang)),
                 notes=notes, data=report)
