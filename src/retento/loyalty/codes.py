"""Promo codes and personal discounts converted into points: a CSV of existing codes, each converted once into
a points lot of its customer's account (joining the customer if needed). The code is unique per program
(`loyalty_codes`), so a file imported again, or a code listed twice, converts nothing more. Every row ends as
converted, skipped (converted before) or invalid (naming the line and the field); valid rows are converted even
when others are not, each in its own savepoint, so nothing is half-written.

CSV columns (header row; `,` or `;`): `code` (required), `kind` (`promo_code` or `discount`, default
`promo_code`), one of `customer_id` / `customer_external_id` / `phone`, `points` (positive, to the cent: what the
code is worth; one point pays one unit of the program's currency), and optionally `expires_in_days`."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retento.contacts import normalize_phone
from retento.core.changes import ChangeContext
from retento.core.errors import DomainError
from retento.customers.models import Customer
from retento.loyalty import service
from retento.loyalty.models import Code, Program
from retento.loyalty.schemas import JoinIn
from retento.sites.service import get_site

KINDS = ("promo_code", "discount")
WHO = ("customer_id", "customer_external_id", "phone")
COLUMNS = ("code", "kind", *WHO, "points", "expires_in_days")
POINTS = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
SHOWN = 1000  # rows listed in a report; the counts cover all of them


@dataclass
class Report:
    converted: int = 0
    skipped: int = 0
    invalid: int = 0
    joined: int = 0
    points: Decimal = Decimal("0.00")
    rows: list[dict[str, Any]] = field(default_factory=list)  # skipped and invalid rows: line, code, field, reason

    def note(self, status: str, line: int, code: str | None, name: str, reason: str) -> None:
        setattr(self, status, getattr(self, status) + 1)
        if len(self.rows) < SHOWN:
            self.rows.append({"line": line, "code": code, "status": status, "field": name, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return {"converted": self.converted, "skipped": self.skipped, "invalid": self.invalid,
                "joined": self.joined, "points": str(self.points), "rows": self.rows}


@dataclass(frozen=True)
class Row:
    line: int
    code: str
    kind: str
    who: tuple[str, str]
    points: Decimal
    expires_in_days: int | None


def read_rows(text: str) -> tuple[list[Row], list[tuple[int, str | None, str, str]]]:
    """Parse the CSV: (valid rows, invalid ones as (line, code, field, reason)). Pure. A file without the needed
    columns is a DomainError naming `file`."""
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;") if text.strip() else csv.excel
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), dialect=dialect)
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in ("code", "points") if c not in header]
    if missing or not any(w in header for w in WHO):
        need = missing or [" / ".join(WHO)]
        raise DomainError.one("file", f"the header row lacks {', '.join(need)} (columns: {', '.join(COLUMNS)})")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise DomainError.one("file", f"unknown columns {', '.join(unknown)} (columns: {', '.join(COLUMNS)})")
    rows, bad = [], []
    for n, raw in enumerate(reader, start=2):
        values = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in raw.items()}
        try:
            rows.append(_row(n, values))
        except DomainError as exc:
            e = exc.errors[0]
            bad.append((n, values.get("code") or None, e.field, e.reason))
    return rows, bad


def _row(line: int, v: dict[str, str]) -> Row:
    code = v.get("code", "")
    if not code or len(code) > 100:
        raise DomainError.one("code", "required, at most 100 characters")
    kind = v.get("kind") or "promo_code"
    if kind not in KINDS:
        raise DomainError.one("kind", f"must be one of {', '.join(KINDS)}")
    given = [(w, v[w]) for w in WHO if v.get(w)]
    if len(given) != 1:
        raise DomainError.one("customer_id", "give exactly one of customer_id, customer_external_id, phone")
    if given[0][0] == "customer_id" and not given[0][1].isdigit():
        raise DomainError.one("customer_id", "must be a whole number")
    amount = v.get("points", "")
    if not POINTS.fullmatch(amount) or Decimal(amount) <= 0:
        raise DomainError.one("points", "a positive number of points, to the cent (as 500 or 99.5)")
    days = v.get("expires_in_days") or None
    if days is not None and not (days.isdigit() and 1 <= int(days) <= 3650):
        raise DomainError.one("expires_in_days", "a whole number of days from 1 to 3650")
    return Row(line, code, kind, given[0], Decimal(amount), int(days) if days else None)


def convert(session: Session, *, site: str, text: str, ctx: ChangeContext, now: datetime, dry_run: bool = False,
            on_progress: Callable[[int, int], None] | None = None) -> Report:
    """Convert every valid row of the CSV into points (see the module); `dry_run` checks without writing."""
    program = service.get_program(session, site)
    site_row = get_site(session, site)
    rows, bad = read_rows(text)
    report = Report()
    for line, code, name, reason in bad:
        report.note("invalid", line, code, name, reason)
    for done, row in enumerate(rows, start=1):
        _convert_row(session, program, site_row, row, report, ctx, now, dry_run)
        if on_progress is not None and (done % 200 == 0 or done == len(rows)):
            on_progress(done, len(rows))
    report.rows.sort(key=lambda r: r["line"])
    return report


def _convert_row(session: Session, program: Program, site: Any, row: Row, report: Report, ctx: ChangeContext,
                 now: datetime, dry_run: bool) -> None:
    done = session.scalar(select(Code).where(Code.program_id == program.id, Code.code == row.code))
    if done is not None:
        report.note("skipped", row.line, row.code, "code",
                    f"converted on {done.created_at:%Y-%m-%d} into account {done.account_id}")
        return
    try:
        with session.begin_nested() as savepoint:
            customer_id = _customer(session, site, row.who)
            account = service.find_account(session, program_id=program.id, customer_id=customer_id)
            if account is None:
                account, _ = service.join(session, data=JoinIn(site=site.code, customer_id=customer_id), ctx=ctx,
                                          now=now)
                report.joined += 1
            op = service.credit(session, account_id=account.id, amount=row.points,
                                reason=f"{row.kind.replace('_', ' ')} {row.code}", idempotency_key=f"code:{row.code}",
                                ctx=ctx, now=now, expires_in_days=row.expires_in_days)
            session.add(Code(program_id=program.id, site_id=program.site_id, code=row.code, kind=row.kind,
                             account_id=account.id, operation_id=op.id, created_at=now))
            session.flush()
            if dry_run:
                savepoint.rollback()
    except DomainError as exc:
        e = exc.errors[0]
        name = {"account_id": "customer_id", "amount": "points", "expires_at": "expires_in_days"}.get(e.field, e.field)
        report.note("invalid", row.line, row.code, name, e.reason)
        return
    report.converted += 1
    report.points += row.points


def _customer(session: Session, site: Any, who: tuple[str, str]) -> int:
    name, value = who
    q = select(Customer.id).where(Customer.site_id == site.id)
    if name == "customer_id":
        q = q.where(Customer.id == int(value))
    elif name == "customer_external_id":
        q = q.where(Customer.external_id == value)
    else:
        try:
            q = q.where(Customer.phone == normalize_phone(value, site.default_region))
        except ValueError as exc:
            raise DomainError.one("phone", str(exc)) from None
    found = session.scalars(q.limit(1)).first()
    if found is None:
        raise DomainError.one(name, f"no customer of site {site.code!r} has this {name.replace('_', ' ')}")
    return found


def lines(rows: Iterable[dict[str, Any]]) -> list[str]:
    """A report's rows as text lines for the terminal."""
    return [f"line {r['line']}: {r['status']} {r['code'] or ''} {r['field']}: {r['reason']}" for r in rows]
