"""Segments: create and edit, compute memberships set-based (all customers or a scope), membership history,
segment_entered / segment_left events, static lists, live preview, size over time, the dirty-customer queue."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    Boolean,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from retento.app import from_session
from retento.core import bus, parsing, work
from retento.core.changes import ChangeContext, Source
from retento.core.dates import parse_day
from retento.core.db.bulk import insert_rows
from retento.core.db.types import UTCDateTime
from retento.core.errors import Conflict, DomainError, NotFound
from retento.customers.merges import Merge
from retento.customers.models import Customer
from retento.segments import events as ev, rollups, rules
from retento.segments.compiler import Context, members_query
from retento.segments.models import (
    DirtyCustomer,
    OrderCategoryFact,
    RfmScore,
    Segment,
    SegmentChange,
    SegmentMember,
    SegmentSettings,
    SegmentSize,
)
from retento.segments.schemas import Kind, MembersIn, SegmentCreate, SegmentEdit
from retento.sites.service import get_site

DEFAULT_THRESHOLD_DAYS = 75.0  # the source's example, used until the base has repeat purchases
M = SegmentMember.__table__
CH = SegmentChange.__table__
SZ = SegmentSize.__table__
MAX_SIZE_DAYS = 3660  # the longest range of daily sizes one request returns
C = Customer.__table__
SYSTEM = ChangeContext.system(Source.SYSTEM)
COUNTED = {"preserve_rowcount": True}  # INSERT ... SELECT reports its row count on PostgreSQL too
_LEAVE = delete(M).where(M.c.segment_id == bindparam("s"), M.c.customer_id == bindparam("c"))  # one member


# --- settings ---------------------------------------------------------------------------------------------

def settings_row(session: Session, site_id: int, *, now: datetime) -> SegmentSettings:
    """The site's settings row, created when missing; workers creating it at once on PostgreSQL do not collide
    (`ON CONFLICT DO NOTHING`: the second waits for the first and reads its row)."""
    row = session.get(SegmentSettings, site_id)
    if row is None:
        insert_rows(session, SegmentSettings.__table__, [{"site_id": site_id, "rfm": {}, "updated_at": now}],
                    skip_existing=True)
        row = session.get_one(SegmentSettings, site_id)
    return row


def threshold_days(session: Session, site_id: int) -> float:
    """The lifecycle threshold in force: the site's override, else the computed median, else 75 days."""
    row = session.get(SegmentSettings, site_id)
    if row is not None and row.threshold_days is not None:
        return float(row.threshold_days)
    if row is not None and row.computed_threshold_days is not None:
        return row.computed_threshold_days
    return DEFAULT_THRESHOLD_DAYS


# --- segments ---------------------------------------------------------------------------------------------

def get(session: Session, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise NotFound("id", f"segment {segment_id} not found")
    return segment


def list_segments(session: Session, *, site: str | None = None, after_id: int = 0, limit: int | None = None
                  ) -> list[Segment]:
    """Segments by id, above `after_id` (pages by key), at most `limit`."""
    q = select(Segment).where(Segment.id > after_id).order_by(Segment.id).limit(limit)
    if site is not None:
        q = q.where(Segment.site_id == get_site(session, site).id)
    return list(session.scalars(q))


def create(session: Session, *, data: SegmentCreate, now: datetime) -> Segment:
    """Store a segment and compute its members. The first computation records history but no events."""
    site = get_site(session, data.site)
    types = rule_types(session)
    node = rules.parse(data.rules, types) if data.rules is not None else None
    if session.scalar(select(Segment.id).where(Segment.site_id == site.id, Segment.code == data.code)):
        raise Conflict("code", f"segment {data.code!r} already exists on site {site.code!r}")
    segment = Segment(site_id=site.id, code=data.code, name=data.name, description=data.description,
                      kind=data.kind.value, rules=data.rules, active=True,
                      time_dependent=bool(node and rules.time_dependent(node, types)), size=0,
                      created_at=now, updated_at=now)
    session.add(segment)
    session.flush()
    if node is not None:
        recompute(session, segment=segment, now=now, emit=False)
    return segment


def edit(session: Session, *, segment: Segment, data: SegmentEdit, now: datetime) -> Segment:
    given = data.model_fields_set
    if "rules" in given:
        if segment.kind == Kind.STATIC:
            raise DomainError.one("rules", "a static segment has no rules")
        if data.rules is None:
            raise DomainError.one("rules", "a dynamic segment needs rules")
        segment.rules = data.rules
        types = rule_types(session)
        segment.time_dependent = rules.time_dependent(rules.parse(data.rules, types), types)
    for name in ("name", "description", "active"):
        if name in given and (getattr(data, name) is not None or name == "description"):
            setattr(segment, name, getattr(data, name))
    segment.updated_at = now
    session.flush()
    if segment.kind == Kind.DYNAMIC and segment.active and given & {"rules", "active"}:
        recompute(session, segment=segment, now=now)
    return segment


def context(session: Session, segment_site_id: int, now: datetime) -> Context:
    return Context(site_id=segment_site_id, now=now, types=rule_types(session),
                   threshold_days=threshold_days(session, segment_site_id))


def rule_types(session: Session) -> rules.RuleTypes:
    """The application's segment rule types."""
    return from_session(session).parts.segment_rules


def recompute(session: Session, *, segment: Segment, now: datetime, scope: Select | None = None,
              emit: bool = True) -> tuple[int, int]:
    """Bring the members of a dynamic segment up to date (only the customers `scope` selects, when given).

    Everyone: one INSERT ... SELECT each for the entries and the exits. A scope (the incremental path):
    the scope's matches and current members are compared in memory. Members then follow the history rows.
    Returns (entered, left)."""
    session.execute(select(Segment.id).where(Segment.id == segment.id).with_for_update())
    if scope is not None:
        return _reevaluate(session, [segment], now=now, scope=scope, emit=emit,
                           have=_members_within(session, [segment.id], scope)).get(segment.id, (0, 0))
    query = members_query(rules.parse(segment.rules, rule_types(session)), context(session, segment.site_id, now))
    first, mark = segment.computed_at is None, _mark(session)
    target = query.subquery()
    sid, at = literal(segment.id, Integer), literal(now, UTCDateTime())
    cols = ["segment_id", "customer_id", "entered", "at"]
    is_member = exists().where(M.c.segment_id == segment.id, M.c.customer_id == target.c.id)
    gone = select(sid, M.c.customer_id, literal(False, Boolean), at).where(
        M.c.segment_id == segment.id, ~exists().where(target.c.id == M.c.customer_id))
    with _without_nested_loops(session):
        session.execute(insert(CH).from_select(
            cols, select(sid, target.c.id, literal(True, Boolean), at).where(~is_member)))
        session.execute(insert(CH).from_select(cols, gone))
    segment.computed_at = now
    return _settle(session, [segment], mark, now, emit, first=first)[segment.id]


@contextmanager
def _without_nested_loops(session: Session) -> Iterator[None]:
    """PostgreSQL: the statements inside planned without nested loops (`enable_nestloop` off for them, then as it
    was). A full recompute compares two whole sets, the segment's query and its members: a hash or merge
    anti-join is linear whatever the statistics say. With statistics taken before the segment had members (a
    new segment, or after a reset, autovacuum off or not yet run) the planner believed the segment had one member
    and re-read all of them for each customer of the query (a nested loop over the materialised members: 68,000
    x 68,000 comparisons, 68 s, for a segment whose first computation took 1.2 s)."""
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    was = session.scalar(select(func.current_setting("enable_nestloop")))
    session.execute(select(func.set_config("enable_nestloop", "off", True)))
    try:
        yield
    finally:
        session.execute(select(func.set_config("enable_nestloop", was, True)))


def _members_within(session: Session, segment_ids: list[int], scope: Select) -> dict[int, set[int]]:
    """The current members among the scope's customers, of each of these segments (one statement for all: the
    scope's entries of the members' customer index)."""
    out: dict[int, set[int]] = {i: set() for i in segment_ids}
    for segment_id, customer_id in session.execute(select(M.c.segment_id, M.c.customer_id).where(
            M.c.customer_id.in_(scope), M.c.segment_id.in_(segment_ids))):
        out[segment_id].add(customer_id)
    return out


def _reevaluate(session: Session, segments: list[Segment], *, now: datetime, scope: Select,
                have: dict[int, set[int]], emit: bool = True, contexts: dict[int, Context] | None = None
                ) -> dict[int, tuple[int, int]]:
    """A few customers (`scope`, of whom `have[segment id]` are members now; the segments locked by the caller):
    their matches and members compared here, each segment's query run on them, the differences of all the
    segments written as history rows that the members then follow. `contexts`: the sites' rule contexts, if the
    caller has them. (entered, left) of each segment with a difference."""
    mark, rows = _mark(session), []
    for segment in segments:
        ctx = contexts[segment.site_id] if contexts else context(session, segment.site_id, now)
        should = set(session.scalars(members_query(rules.parse(segment.rules, ctx.types), ctx, scope=scope)))
        had = have[segment.id]
        rows += [{"segment_id": segment.id, "customer_id": c, "entered": entered, "at": now}
                 for entered, ids in ((True, should - had), (False, had - should)) for c in sorted(ids)]
    if not rows:
        return {}
    insert_rows(session, CH, rows)
    moved = {r["segment_id"] for r in rows}
    return _settle(session, [s for s in segments if s.id in moved], mark, now, emit)


def _mark(session: Session) -> int:
    """The newest history id (the end of the primary key, read backwards): the rows written after it for a
    segment locked since are that segment's own (only a transaction holding a segment's lock writes its rows)."""
    return session.scalar(select(CH.c.id).order_by(CH.c.id.desc()).limit(1)) or 0


def _settle(session: Session, segments: list[Segment], mark: int, now: datetime, emit: bool, *,
            first: bool = False) -> dict[int, tuple[int, int]]:
    """The members of these segments (locked by the caller) follow their history rows written since `mark`;
    their sizes and the day's size points move, and an event is recorded per change when `emit`. `first`: the
    segments' first computation (a size point even without a change). (entered, left) of each segment.

    The exits are read first (one range of the history's (segment, id) index per segment) and deleted by their
    key, one statement run for each (executemany): each finds its row by both key columns whatever the planner
    believes. A DELETE joined with the history rows was planned on the statistics of the tables from before this
    transaction filled them (both "empty" after a reset): a nested loop that re-read every exit for each of
    600,000 members (minutes, at 1,000,000 customers, when the lifecycle threshold moved); an `IN (ids)` list
    became a filter over all the segment's members, the index read by the segment alone."""
    by_id = {s.id: s for s in segments}
    mine = and_(CH.c.segment_id.in_(list(by_id)), CH.c.id > mark)
    gone = session.execute(select(CH.c.segment_id, CH.c.customer_id).where(mine, CH.c.entered.is_(False))).all()
    left = Counter(s for s, _ in gone)
    if gone and session.execute(_LEAVE, [{"s": s, "c": c} for s, c in gone]).rowcount != len(gone):
        left = _recount(session, by_id)  # not members after all (never under the lock): the sizes counted again
    entered = Counter(session.scalars(insert(M).from_select(
        ["segment_id", "customer_id", "since"],
        select(CH.c.segment_id, CH.c.customer_id, literal(now, UTCDateTime())).where(mine, CH.c.entered.is_(True)))
        .returning(M.c.segment_id)))
    for segment in segments:
        segment.size = segment.size + entered[segment.id] - left[segment.id]
        if entered[segment.id] or left[segment.id] or first:  # the day's size, for the chart
            _keep_size(session, segment, now.date())
    changed = [s for s in segments if entered[s.id] or left[s.id]]
    if emit and changed:  # one event per change, written by the database from the history rows
        payload = case({s.id: literal({"segment_id": s.id, "segment_code": s.code, "segment_name": s.name},
                                      bus.Event.__table__.c.payload.type) for s in changed}, value=CH.c.segment_id)
        site = case({s.id: literal(s.site_id, Integer) for s in changed}, value=CH.c.segment_id)
        row = bus.event_row(ev.SEGMENT_ENTERED, ctx=SYSTEM, now=now)
        varying = ("type", "customer_id", "idempotency_key", "payload", "site_id")
        fixed = {k: v for k, v in row.items() if k not in varying}
        t = bus.Event.__table__
        bus.record_select(session, [*fixed, *varying], select(
            *(literal(v, t.c[k].type) for k, v in fixed.items()),
            case((CH.c.entered.is_(True), ev.SEGMENT_ENTERED), else_=ev.SEGMENT_LEFT), CH.c.customer_id,
            literal("segment-change:", String) + cast(CH.c.id, String), payload, site,
        ).where(mine, CH.c.segment_id.in_([s.id for s in changed])).order_by(CH.c.id))
    return {s.id: (entered[s.id], left[s.id]) for s in segments}


def _recount(session: Session, by_id: dict[int, Segment]) -> Counter[int]:
    """How many members each segment lost, from its members counted again (its size as it was before)."""
    now_in = dict(session.execute(select(M.c.segment_id, func.count()).where(M.c.segment_id.in_(list(by_id)))
                                  .group_by(M.c.segment_id)).all())
    return Counter({i: s.size - now_in.get(i, 0) for i, s in by_id.items()})


def recompute_site(session: Session, *, site_id: int | None, now: datetime, only: Iterable[int] | None = None,
                   time_dependent_only: bool = False) -> dict[int, tuple[int, int]]:
    """Full recompute of the active dynamic segments (of one site, or all)."""
    q = select(Segment).where(Segment.kind == Kind.DYNAMIC.value, Segment.active.is_(True)).order_by(Segment.id)
    if site_id is not None:
        q = q.where(Segment.site_id == site_id)
    if only is not None:
        q = q.where(Segment.id.in_(list(only)))
    if time_dependent_only:
        q = q.where(Segment.time_dependent.is_(True))
    return {s.id: recompute(session, segment=s, now=now) for s in session.scalars(q)}


def segments_using(session: Session, site_id: int, rule_type: str) -> list[int]:
    out = []
    for s in session.scalars(select(Segment).where(Segment.site_id == site_id, Segment.kind == Kind.DYNAMIC.value)):
        if any(leaf.type == rule_type for leaf in rules.leaves(rules.parse(s.rules, rule_types(session)))):
            out.append(s.id)
    return out


def refresh_due(session: Session, *, now: datetime, every: timedelta) -> int:
    """Recompute time-dependent segments not computed within `every` (windows move with time)."""
    due = list(session.scalars(select(Segment.id).where(
        Segment.kind == Kind.DYNAMIC.value, Segment.active.is_(True), Segment.time_dependent.is_(True),
        (Segment.computed_at.is_(None)) | (Segment.computed_at <= now - every))))
    if due:
        recompute_site(session, site_id=None, now=now, only=due)
    return len(due)


# --- preview, members, history ----------------------------------------------------------------------------

def preview(session: Session, *, site: str, raw_rules: dict[str, Any], now: datetime, sample: int = 10
            ) -> dict[str, Any]:
    """Count and a sample of who matches, without storing anything (for the rule editor). The sample is the
    first ids of the rule's own query (the database can stop early), its customers then read by id."""
    site_id = get_site(session, site).id
    q = members_query(rules.parse(raw_rules, rule_types(session)), context(session, site_id, now)).subquery()
    count = session.scalar(select(func.count()).select_from(q))
    ids = list(session.scalars(select(q.c.id).order_by(q.c.id).limit(sample))) if count and sample else []
    rows = session.execute(select(C.c.id, C.c.external_id, C.c.email, C.c.first_name, C.c.last_name)
                           .where(C.c.id.in_(ids)).order_by(C.c.id)) if ids else []
    return {"count": count, "sample": [dict(r._mapping) for r in rows]}


def find(session: Session, *, site_id: int, ref: int | str) -> Segment:
    """A segment of a site by id or code."""
    q = select(Segment).where(Segment.site_id == site_id)
    segment = session.scalar(q.where(Segment.id == ref) if isinstance(ref, int) else q.where(Segment.code == ref))
    if segment is None:
        raise NotFound("segment", f"segment {ref!r} not found on this site")
    return segment


def members_select(segment_id: int) -> Select:
    """The current members' customer ids, to use inside another statement (e.g. INSERT … SELECT)."""
    return select(M.c.customer_id).where(M.c.segment_id == segment_id)


def matching_select(session: Session, *, site_id: int, raw_rules: dict[str, Any] | None, now: datetime,
                    field: str = "rules") -> Select:
    """The ids (`id`) of the site's customers who match a rule tree now (every customer of the site for None),
    to use inside another statement; a tree that does not parse is refused naming its place under `field`."""
    node = None if raw_rules is None else rules.parse(raw_rules, rule_types(session), path=field)
    return members_query(node, context(session, site_id, now))


def member_ids(session: Session, *, segment: Segment, limit: int = 100, offset: int = 0) -> list[int]:
    return list(session.scalars(select(M.c.customer_id).where(M.c.segment_id == segment.id)
                                .order_by(M.c.customer_id).limit(limit).offset(offset)))


def segments_of(session: Session, *, customer_id: int) -> list[tuple[Segment, datetime]]:
    """The segments a customer is in now, with the time they joined each, by segment name."""
    q = (select(Segment, M.c.since).join(M, M.c.segment_id == Segment.id)
         .where(M.c.customer_id == customer_id).order_by(Segment.name, Segment.id))
    return [(seg, since) for seg, since in session.execute(q)]


def changes(session: Session, *, segment: Segment, since_id: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    rows = session.execute(select(CH.c.id, CH.c.customer_id, CH.c.entered, CH.c.at)
                           .where(CH.c.segment_id == segment.id, CH.c.id > since_id).order_by(CH.c.id).limit(limit))
    return [dict(r._mapping) for r in rows]


def _keep_size(session: Session, segment: Segment, day: date) -> None:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(SZ).values(segment_id=segment.id, day=day, size=segment.size)
    session.execute(stmt.on_conflict_do_update(index_elements=["segment_id", "day"], set_={"size": segment.size}))


def day_range(start: str | None, end: str | None) -> tuple[date | None, date | None]:
    """`from` / `to` of a sizes request (YYYY-MM-DD), a pointed error naming the bad one."""
    out = []
    for name, value in (("from", start), ("to", end)):
        try:
            out.append(None if value is None else parse_day(value))
        except ValueError as exc:
            raise DomainError.one(name, str(exc)) from None
    return out[0], out[1]


def sizes(session: Session, *, segment: Segment, today: date, start: date | None = None,
          end: date | None = None) -> list[dict[str, Any]]:
    """The segment's size at the end of each day from `start` (its first computation's day when None, never
    earlier) to `end` (today when None): one point per day, the days without a change carrying the size on."""
    end = end or today
    first = session.scalar(select(func.min(SZ.c.day)).where(SZ.c.segment_id == segment.id))
    if start is not None and start > end:
        raise DomainError.one("from", "must not be after to")
    if first is None or first > end:
        return []
    start = max(start or first, first)
    if (end - start).days >= MAX_SIZE_DAYS:
        raise DomainError.one("from", f"a range of at most {MAX_SIZE_DAYS} days")
    carried = session.scalar(select(SZ.c.size).where(SZ.c.segment_id == segment.id, SZ.c.day <= start)
                             .order_by(SZ.c.day.desc()).limit(1))
    changed = dict(session.execute(select(SZ.c.day, SZ.c.size).where(
        SZ.c.segment_id == segment.id, SZ.c.day > start, SZ.c.day <= end)).tuples().all())
    out, size = [], carried or 0
    for n in range((end - start).days + 1):
        day = start + timedelta(days=n)
        size = changed.get(day, size)
        out.append({"date": day.isoformat(), "size": size})
    return out


# --- static segments --------------------------------------------------------------------------------------

def resolve_customers(session: Session, *, site_id: int, data: MembersIn) -> list[int]:
    """Customer ids of the site for ids / externalIds / emails; an unknown one is a pointed error."""
    found: list[int] = []
    for field, col, values in (("customer_ids", C.c.id, data.customer_ids),
                               ("external_ids", C.c.external_id, data.external_ids),
                               ("emails", C.c.email, [e.strip().lower() for e in data.emails])):
        for i in range(0, len(values), 900):
            chunk = values[i:i + 900]
            got = dict(list(session.execute(select(col, C.c.id).where(C.c.site_id == site_id, col.in_(chunk)))))
            missing = [v for v in chunk if v not in got]
            if missing:
                raise NotFound(field, f"{len(missing)} not found on this site, first: {missing[0]!r}")
            found += [got[v] for v in chunk]
    return list(dict.fromkeys(found))


def change_members(session: Session, *, segment: Segment, data: MembersIn, add: bool, now: datetime
                   ) -> tuple[int, int]:
    """Add customers to / remove them from a static segment; history and events as for dynamic ones."""
    if segment.kind != Kind.STATIC:
        raise DomainError.one("kind", "members of a dynamic segment follow its rules; edit the rules instead")
    session.execute(select(Segment.id).where(Segment.id == segment.id).with_for_update())
    ids = resolve_customers(session, site_id=segment.site_id, data=data)
    first, mark = segment.computed_at is None, _mark(session)
    for i in range(0, len(ids), 900):
        chunk = ids[i:i + 900]
        present = set(session.scalars(select(M.c.customer_id).where(M.c.segment_id == segment.id,
                                                                     M.c.customer_id.in_(chunk))))
        todo = [c for c in chunk if (c in present) != add]
        if todo:
            session.execute(insert(CH), [{"segment_id": segment.id, "customer_id": c, "entered": add, "at": now}
                                         for c in todo])
    segment.computed_at = segment.updated_at = now
    return _settle(session, [segment], mark, now, emit=True, first=first)[segment.id]


def parse_members_csv(text: str) -> MembersIn:
    """A CSV with a header naming one or more of: customer_id (or id), external_id, email."""
    header, rows = parsing.csv_table(text, field="file")
    names = {n.strip().lower(): n for n in header}
    keys = {"customer_id": names.get("customer_id") or names.get("id"), "external_id": names.get("external_id")
            or names.get("externalid"), "email": names.get("email")}
    if not any(keys.values()):
        raise DomainError.one("file", "the CSV header must name customer_id, external_id or email")
    data = MembersIn()
    for line, row in rows:
        if keys["customer_id"] and (v := (row.get(keys["customer_id"]) or "").strip()):
            number = parsing.integer(v, lo=1)
            if number is None:
                raise DomainError.one(f"file.line {line}", f"customer_id {v[:40]!r} is not a whole number")
            data.customer_ids.append(number)
        elif keys["external_id"] and (v := (row.get(keys["external_id"]) or "").strip()):
            data.external_ids.append(v)
        elif keys["email"] and (v := (row.get(keys["email"]) or "").strip()):
            data.emails.append(v)
        else:
            raise DomainError.one(f"file.line {line}", "no customer_id, external_id or email on this line")
    return data


# --- incremental path -------------------------------------------------------------------------------------

# Queued customers as a queue of the durable-work primitive, worked inside one transaction (`work.lock_due`).
DIRTY = work.Queue.in_transaction(
    "segment_dirty", DirtyCustomer.__table__, label="customers to re-evaluate / пересчёт сегментов клиентов",
    key="customer_id", state=None, due=None, order=("queued_at", "customer_id"), where=lambda t: t.c.claim.is_(None))


def mark_dirty(session: Session, customer_ids: Iterable[int], *, now: datetime) -> None:
    rows = [{"customer_id": c, "queued_at": now} for c in dict.fromkeys(customer_ids) if c is not None]
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(DirtyCustomer.__table__)
    # a customer being re-evaluated right now is queued again (claim cleared), not lost
    rollups.upsert(session, DirtyCustomer.__table__, rows, conflict="customer_id", pg_set="claim = NULL",
                   other=stmt.on_conflict_do_update(index_elements=["customer_id"], set_={"claim": None}))


def process_dirty(session: Session, *, now: datetime, limit: int = 1000) -> int:
    """Re-evaluate queued customers: their rollups, then every active dynamic segment of their sites."""
    d = DirtyCustomer.__table__
    token = uuid.uuid4().hex
    claimed = session.execute(update(d).where(d.c.customer_id.in_(work.lock_due(session, DIRTY, now=now,
                                                                               limit=limit)))
                              .values(claim=token), execution_options=COUNTED).rowcount
    if not claimed:
        return 0
    scope = select(d.c.customer_id).where(d.c.claim == token)
    rollups.refresh(session, customer_ids=scope)
    site_ids = list(session.scalars(select(C.c.site_id.distinct()).where(C.c.id.in_(scope))))
    # locked together, in id order (as a full recompute locks each), and their members among the customers read
    # in one statement, not one lock and one members query per segment
    segments = list(session.scalars(select(Segment).where(
        Segment.site_id.in_(site_ids), Segment.active.is_(True), Segment.kind == Kind.DYNAMIC.value)
        .order_by(Segment.id).with_for_update()))
    have = _members_within(session, [s.id for s in segments], scope) if segments else {}
    contexts = {i: context(session, i, now) for i in {s.site_id for s in segments}}  # read once a batch
    _reevaluate(session, segments, now=now, scope=scope, have=have, contexts=contexts)
    session.execute(delete(d).where(d.c.claim == token))
    return claimed


def apply_definitions(session: Session, *, raw: Any, now: datetime) -> list[tuple[Segment, bool]]:
    """Create or update segments from a YAML / JSON document (one segment, or {site, segments: [...]}).

    All or nothing; errors name the place in the document (segments.2.rules.all.0.orders.op)."""
    if isinstance(raw, dict) and "segments" in raw:
        default_site, items, prefix = raw.get("site"), raw["segments"], "segments."
        if not isinstance(items, list):
            raise DomainError.one("segments", "must be a list of segments")
    else:
        default_site, items, prefix = None, [raw], ""
    out = []
    for i, item in enumerate(items):
        where = f"{prefix}{i}." if prefix else ""
        if not isinstance(item, dict):
            raise DomainError.one(where.rstrip(".") or "document", "a segment is a mapping")
        item = {"site": default_site, **item} if default_site else item
        try:
            data = SegmentCreate.model_validate(item)
        except ValidationError as exc:
            raise DomainError.from_pydantic(exc, where) from None
        site_id = get_site(session, data.site).id
        existing = session.scalar(select(Segment).where(Segment.site_id == site_id, Segment.code == data.code))
        try:
            if existing is None:
                out.append((create(session, data=data, now=now), True))
            else:
                edit_data = SegmentEdit(name=data.name, description=data.description, rules=data.rules) \
                    if data.kind == Kind.DYNAMIC else SegmentEdit(name=data.name, description=data.description)
                out.append((edit(session, segment=existing, data=edit_data, now=now), False))
        except DomainError as exc:
            exc.errors = [type(e)(f"{where}{e.field}", e.reason) for e in exc.errors]
            raise
    return out


# --- merging duplicate customers ----------------------------------------------------------------------------

def merge_customers(session: Session, merge: Merge) -> dict[str, int]:
    """The `customer_merge` handler (customers.merging), called after the orders' (they are the kept customer's
    by now): the rollups, category rollups and gaps of the customers rebuilt from the orders, the merged ones'
    RFM rows dropped (the kept one's follow the next RFM refresh); the merged customers leave every segment
    (history rows, no events: they are gone), the kept one joins the static segments they were in, and is
    queued for its dynamic segments as after any change."""
    f = OrderCategoryFact.__table__
    rollups.apply_orders(session, session.scalars(select(f.c.order_id).where(f.c.customer_id.in_(merge.merged_ids))))
    rollups.refresh(session, customer_ids=merge.all_ids)
    for table in (RfmScore.__table__, DirtyCustomer.__table__):
        session.execute(delete(table).where(table.c.customer_id.in_(merge.merged_ids)))
    members: dict[int, set[int]] = {}
    for segment_id, customer_id in session.execute(select(M.c.segment_id, M.c.customer_id)
                                                   .where(M.c.customer_id.in_(merge.all_ids))):
        members.setdefault(segment_id, set()).add(customer_id)
    joined = 0
    for segment in session.scalars(select(Segment).where(Segment.id.in_(members)).order_by(Segment.id)
                                   .with_for_update()):
        there = members[segment.id]
        leaving = sorted(there - {merge.keep_id})
        joining = [merge.keep_id] if segment.kind == Kind.STATIC and merge.keep_id not in there else []
        for entered, ids in ((False, leaving), (True, joining)):
            if ids:
                mark = _mark(session)
                session.execute(insert(CH), [{"segment_id": segment.id, "customer_id": c, "entered": entered,
                                              "at": merge.now} for c in ids])
                joined += _settle(session, [segment], mark, merge.now, emit=entered)[segment.id][0]
    mark_dirty(session, [merge.keep_id], now=merge.now)
    return {"static_segments_joined": joined}
