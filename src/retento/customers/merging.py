"""Merging duplicate customers into one: the kept customer takes what it lacks from the merged ones, every domain
moves what it keeps about them (the `customer_merge` handlers the application registers, `App.parts`), the
merged rows are deleted and `customer_merges` says where each went, so their old ids and externalIds still answer.

One transaction, the caller's: a handler that refuses (a DomainError) leaves nothing written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from retento.app import from_session
from retento.core import bus
from retento.core.changes import ChangeContext
from retento.core.errors import Conflict, DomainError, FieldError
from retento.core.jsonable import jsonable
from retento.customers import events as ev, service
from retento.customers.merges import Merge, merged_into, not_found
from retento.customers.models import Consent, Customer, CustomerInterest, CustomerMerge, CustomerTag
from retento.customers.schemas import CustomerCreate
from retento.history import service as history
from retento.sites.service import get_site

MAX_MERGED = 10  # customers merged into one in one call
# taken from a merged customer only where the kept one has none (names too: a duplicate is the same person)
SCALARS = ("first_name", "last_name", "patronymic", "email", "phone", "telegram_id", "whatsapp_id", "vk_id",
           "birthday", "timezone", "locale", "entry_point", "manager_id", "external_id")
_MERGES = CustomerMerge.__table__


@dataclass
class Merged:
    keep_id: int
    merged_ids: list[int]  # merged by this call (empty on a repeat)
    moved: dict[str, int] = field(default_factory=dict)  # per kind of row: how many became the kept customer's
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)  # the kept customer's fields filled
    replayed: bool = False  # everything asked was merged before: nothing changed


def merge(session: Session, *, site: str, keep_id: int, merge_ids: Sequence[int], ctx: ChangeContext,
          now: datetime, idempotency_key: str | None = None) -> Merged:
    """Merge `merge_ids` into `keep_id` on `site`. A customer already merged into `keep_id` counts as done (a
    retry changes nothing); the same `idempotency_key` with another request is a 409. Errors name the field:
    `site`, `keep`, `merge`, `merge.N` (the Nth id)."""
    ids = list(merge_ids)
    _check_shape(keep_id, ids)
    s = get_site(session, site)
    if idempotency_key is not None and (earlier := _by_key(session, idempotency_key)) is not None:
        if earlier != (keep_id, set(ids)):
            raise Conflict("idempotency_key", "this key was already used for another merge")
        return Merged(keep_id, [], replayed=True)
    rows = {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_([keep_id, *ids]))
                                              .order_by(Customer.id).with_for_update())}
    gone = merged_into(session, [i for i in [keep_id, *ids] if i not in rows], site_ids=[s.id])
    keep = rows.get(keep_id)
    if keep is None:
        raise not_found("keep", keep_id, gone)
    if keep.site_id != s.id:
        raise DomainError.one("keep", f"customer {keep_id} is not a customer of site {site!r}")
    todo = []
    for n, cid in enumerate(ids):
        if cid in rows:
            if rows[cid].site_id != s.id:
                raise DomainError.one(f"merge.{n}", f"customer {cid} is of another site than customer {keep_id}")
            todo.append(cid)
        elif gone.get(cid) != keep_id:
            raise not_found(f"merge.{n}", cid, gone)
    if not todo:
        return Merged(keep_id, [], replayed=True)
    job = Merge(s.id, keep_id, tuple(todo), ctx, now)
    snaps = service.snapshots(session, job.all_ids)
    moved: dict[str, int] = {}
    for _name, handler in from_session(session).parts.customer_merge.items():
        moved.update(handler(session, job) or {})
    _record(session, job, snaps, moved, idempotency_key)
    _delete(session, todo)
    for cid in todo:
        session.expunge(rows[cid])
    fills = _fills(session, plan(snaps[keep_id], [snaps[c] for c in todo]), site)
    changes = service.edit(session, customer=keep, data=fills, ctx=ctx, now=now) if fills else []
    bus.record(session, [bus.event_row(ev.CUSTOMER_MERGED, ctx=ctx, now=now, site_id=s.id, customer_id=keep_id,
                                       payload={"merged_ids": todo, "moved": moved,
                                                "merged_external_ids": [snaps[c]["external_id"] for c in todo
                                                                        if snaps[c]["external_id"]]})])
    return Merged(keep_id, todo, moved, changes)


def _check_shape(keep_id: int, ids: list[int]) -> None:
    errors = []
    if not ids:
        errors.append(FieldError("merge", "give at least one customer id to merge"))
    elif len(ids) > MAX_MERGED:
        errors.append(FieldError("merge", f"at most {MAX_MERGED} customers in one merge, got {len(ids)}"))
    if keep_id in ids:
        errors.append(FieldError(f"merge.{ids.index(keep_id)}", "the kept customer cannot be merged into itself"))
    if len(set(ids)) != len(ids):
        dup = next(i for n, i in enumerate(ids) if i in ids[:n])
        errors.append(FieldError(f"merge.{ids.index(dup, ids.index(dup) + 1)}", f"customer {dup} is listed twice"))
    if errors:
        raise DomainError(errors)


def _by_key(session: Session, key: str) -> tuple[int, set[int]] | None:
    rows = session.execute(select(_MERGES.c.merged_id, _MERGES.c.kept_id)
                           .where(_MERGES.c.idempotency_key == key)).all()
    if not rows:
        return None
    return rows[0][1], {r[0] for r in rows}


def plan(keep: dict[str, Any], merged: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The fields the kept customer takes from the merged ones (snapshots, in the order given), as an edit: each
    field it has empty from the first that has it; custom fields and personal dates it lacks; tags and interests
    together; per channel the latest consent decision; a confirmed email stays confirmed. Pure."""
    data: dict[str, Any] = {}
    for name in SCALARS:
        if keep[name] in (None, ""):
            value = next((m[name] for m in merged if m[name] not in (None, "")), None)
            if value is not None:
                data[name] = value
    for name in ("custom_fields", "personal_dates"):
        extra = {k: v for m in reversed(merged) for k, v in (m[name] or {}).items() if k not in (keep[name] or {})}
        if extra:  # (an edit merges custom fields, and replaces personal dates)
            data[name] = {**(keep[name] or {}), **extra} if name == "personal_dates" else extra
    for name in ("tags", "interests"):
        together = sorted({*keep[name], *(x for m in merged for x in m[name])})
        if together != sorted(keep[name]):
            data[name] = together
    consents = {}
    for ch in sorted({ch for c in (keep, *merged) for ch in c["consents"]}):
        decisions = [c["consents"][ch] for c in (keep, *merged) if ch in c["consents"]]
        latest = max(decisions, key=lambda x: x["at"])  # the kept customer's wins a tie (max keeps the first)
        if latest["granted"] != (keep["consents"].get(ch) or {}).get("granted"):
            consents[ch] = latest
    if consents:
        data["consents"] = consents
    email = data.get("email", keep["email"])
    if email and not keep["email_confirmed"] and any(m["email"] == email and m["email_confirmed"] for m in merged):
        data["email_confirmed"] = True
    elif "email" in data:
        data["email_confirmed"] = keep["email_confirmed"]  # (an edit's new address would be unconfirmed)
    return data


def _fills(session: Session, data: dict[str, Any], site: str) -> CustomerCreate | None:
    """`plan`'s edit, validated as any edit is (the union of tags or custom fields keeps their limits)."""
    if not data:
        return None
    raw = {k: jsonable(v) for k, v in data.items()}
    edit = service.parse_create(session, {**raw, "site": site}, prefix="keep.")
    edit.model_fields_set.discard("site")
    return edit


def _record(session: Session, job: Merge, snaps: dict[int, dict[str, Any]], moved: dict[str, int],
            key: str | None) -> None:
    """customer_merges rows (earlier merges into a merged customer now point at the kept one) and history: each
    merged customer deleted (its last state as the old value), the kept one's `merged` entry."""
    session.execute(update(_MERGES).where(_MERGES.c.kept_id.in_(job.merged_ids)).values(kept_id=job.keep_id))
    session.execute(insert(_MERGES), [{"merged_id": c, "kept_id": job.keep_id, "site_id": job.site_id,
                                       "merged_external_id": snaps[c]["external_id"], "merged_at": job.now,
                                       "idempotency_key": key} for c in job.merged_ids])
    rows = [history.entry(entity=service.ENTITY, entity_id=c, site_id=job.site_id, ctx=job.ctx, now=job.now,
                          deleted=True, field="merged_into", old=snaps[c], new=job.keep_id) for c in job.merged_ids]
    rows.append(history.entry(entity=service.ENTITY, entity_id=job.keep_id, site_id=job.site_id, ctx=job.ctx,
                              now=job.now, field="merged", old=None,
                              new={"customers": list(job.merged_ids), "moved": moved}))
    history.write(session, rows)


def _delete(session: Session, ids: list[int]) -> None:
    for model in (CustomerTag, CustomerInterest, Consent):
        session.execute(delete(model.__table__).where(model.__table__.c.customer_id.in_(ids)))
    session.execute(delete(Customer.__table__).where(Customer.__table__.c.id.in_(ids)))
