"""Site isolation: a session made for a request of a site-limited API key sees and writes only its sites' data.

The one mechanism every query of site-owned data goes through:

- Authentication (`apikeys.api.admit`) calls `enter(principal.site_ids)`; every session made afterwards in that
  request (`ScopedSession`, the class of every session factory) takes that scope into `session.info`. Sessions
  made anywhere else (worker, CLI, tests, an unrestricted key) have none and see every site.
- Every mapped class says how its rows belong to a site, in `__site_scope__`: `BySite` (a site id column),
  `Through` (a customer, an order, a segment ... that does), `ListedSites` (a JSON list of sites, empty meaning
  every site: triggers, webhook subscriptions), or `GLOBAL` (not site data: statuses, managers, API keys).
- A `do_orm_execute` listener adds a `with_loader_criteria` per site-owned class to every ORM SELECT, UPDATE
  and DELETE of a scoped session (so `Session.get`, `select(Model)`, `select(Model.column)`, counts, subqueries,
  bulk updates and deletes), and a `before_flush` listener refuses to insert or change a row outside the scope.

Other sites' rows are thereby "not found". (An `aliased()` site-owned entity is scoped in its own FROM; joined to
with an ON clause, its criterion is not adapted by SQLAlchemy and the statement fails rather than read other sites.) Naming another site (`get_site`) is a 403 naming the field. Core
statements on `Table` objects and raw SQL are not rewritten: they run on ids the request reached through a
scoped ORM query or on a site it resolved through `get_site`; tests/api/test_site_isolation.py calls every
route with a key of one site against another site's objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextvars import ContextVar, copy_context
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Integer,
    Text,
    and_,
    case,
    cast,
    event,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Mapper, Session, with_loader_criteria
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql import visitors

from retento.core.errors import DomainError, FieldError, NotFound

ALL_SITES = "retento_all_sites"  # execution option: this statement sees every site (see `unscoped`)
_KEY, _OPTIONS, _CODES = "site_scope", "site_scope_options", "site_scope_codes"
_current: ContextVar[frozenset[int] | None] = ContextVar("retento_site_scope", default=None)
T = TypeVar("T")


# --- how a mapped class belongs to a site -------------------------------------------------------------------


@dataclass(frozen=True)
class BySite:
    """The row names its site: `column` holds the site id (`id` for the sites table itself)."""

    column: str = "site_id"


@dataclass(frozen=True)
class Through:
    """The row belongs to the site of the row it refers to: `links` are (column, table) pairs, the first link
    whose column is not null decides (a task: its order if it has one, else its customer)."""

    links: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ListedSites:
    """A JSON list of sites (ids, or codes with `key="code"`) in `column` (at `path` inside it); an empty or
    missing list means every site. A scoped session sees a row only when its list is not empty and within the
    scope: a row for every site belongs to no single site's key."""

    column: str
    path: str | None = None
    key: str = "id"


@dataclass(frozen=True)
class Global:
    """Not site data: reference books, managers, API keys, the bus's own bookkeeping."""


GLOBAL = Global()
Spec = BySite | Through | ListedSites | Global


def by_customer() -> Through:
    return Through((("customer_id", "customers"),))


def by_order_or_customer() -> Through:
    return Through((("order_id", "orders"), ("customer_id", "customers")))


_CLASSES: dict[str, type] = {}  # table name -> mapped class, filled as mappers are configured


@event.listens_for(Mapper, "mapper_configured")
def _register(mapper: Mapper, cls: type) -> None:
    _CLASSES[mapper.local_table.name] = cls


def spec_of(cls: type) -> Spec | None:
    return cls.__dict__.get("__site_scope__")


# --- the scope of a session ---------------------------------------------------------------------------------


def enter(site_ids: frozenset[int] | None) -> None:
    """Authentication calls this: sessions made from now on in this request (this context) see only these
    sites (None: every site)."""
    _current.set(site_ids)


def current() -> frozenset[int] | None:
    """The sites sessions made now in this context will see (None: every site)."""
    return _current.get()


def as_system(fn: Callable[..., T], /, *args: Any, **kw: Any) -> T:
    """`fn(*args, **kw)` as the worker would run it: sessions made in it see every site, also inside a request
    of a site-limited key (which must have checked first that the caller may ask for it)."""

    def run() -> T:
        _current.set(None)
        return fn(*args, **kw)

    return copy_context().run(run)


class ScopedSession(Session):
    """The session class of every session factory: made inside a request of a site-limited key, it carries that
    key's sites (`of`); made anywhere else, none."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        scope = _current.get()
        if scope is not None:
            self.info[_KEY] = scope


def of(session: Session) -> frozenset[int] | None:
    """The sites this session may see; None: every site."""
    return session.info.get(_KEY)


def allows(session: Session, site_id: int | None) -> bool:
    scope = of(session)
    return scope is None or site_id in scope


def unscoped(statement: Any) -> Any:
    """The statement, seeing every site. Only for column queries that decide between "forbidden" and "unknown"
    or keep a globally unique name unique; an entity loaded this way would sit in the identity map, where
    `Session.get` finds it without a query."""
    return statement.execution_options(**{ALL_SITES: True})


def require(session: Session, model: type, row_id: int, field: str) -> Any:
    """The row with this id, which the session must see; else a 404 naming `field` (another site's row is
    "not found", as one that does not exist: nothing tells them apart)."""
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(field, f"{field.removesuffix('_id')} {row_id} not found")
    return row


def forbidden(field: str, what: str) -> DomainError:
    return DomainError([FieldError(field, f"this API key may not use {what}")], status=403)


def site_codes(session: Session) -> frozenset[str]:
    """The codes of the scope's sites (once per session)."""
    codes = session.info.get(_CODES)
    if codes is None:
        sites = _CLASSES["sites"]
        codes = session.info[_CODES] = frozenset(session.scalars(unscoped(
            select(sites.code).where(sites.id.in_(sorted(of(session) or ()))))))
    return codes


# --- reading: criteria added to every ORM statement of a scoped session -----------------------------------


def criterion(spec: Spec, column: Callable[[str], Any], site_ids: Iterable[int], dialect: str) -> ColumnElement:
    """SQL that holds for the rows (whose columns `column(name)` gives) that belong to one of `site_ids`.

    The ids are written into the SQL as literals, not bound: a key's sites are few fixed integers, so each scope
    compiles once, and executing it costs no matching of bound parameters."""
    ids = sorted(site_ids)
    if isinstance(spec, BySite):
        return column(spec.column).in_(_literals(ids))
    if isinstance(spec, Through):
        parts, earlier = [], []
        for name, table in spec.links:
            parent = _CLASSES[table].__table__
            owned = select(parent.c.id).where(criterion(spec_of(_CLASSES[table]), parent.c.__getitem__, ids, dialect))
            parts.append(and_(*(c.is_(None) for c in earlier), column(name).in_(owned)))
            earlier.append(column(name))
        return or_(*parts)
    if isinstance(spec, ListedSites):
        return _listed_within(spec, column(spec.column), ids, dialect)
    raise TypeError(f"not site data: {spec!r}")


def _literals(ids: list[int]) -> list[ColumnElement]:
    return [literal_column(str(int(i)), Integer) for i in ids]


def _listed_within(spec: ListedSites, doc: Any, ids: list[int], dialect: str) -> ColumnElement:
    """The JSON list is an array, not empty, and every element names one of the sites (one statement per
    dialect: PostgreSQL's jsonb functions, SQLite's json1)."""
    sites = _CLASSES["sites"].__table__
    if dialect == "postgresql":
        value = doc[spec.path] if spec.path else doc
        elements = func.jsonb_array_elements_text(value).table_valued("value")
        allowed = select(sites.c.code if spec.key == "code" else cast(sites.c.id, Text))
        kind, length = func.jsonb_typeof(value), func.jsonb_array_length(value)
    else:
        path = f"$.{spec.path}" if spec.path else "$"
        elements = func.json_each(doc, path).table_valued("value")
        allowed = select(sites.c.code if spec.key == "code" else sites.c.id)
        kind, length = func.json_type(doc, path), func.json_array_length(doc, path)
    outside = select(elements.c.value).where(elements.c.value.not_in(allowed.where(sites.c.id.in_(_literals(ids)))))
    # CASE, not AND: PostgreSQL may evaluate AND's operands in any order, and the length of a non-array fails.
    return case((kind == "array", and_(length > 0, ~exists(outside))), else_=false())


def _options(session: Session, site_ids: frozenset[int], statement: Any) -> list[Any]:
    """A loader criterion for each site-owned class the statement reads or changes, in it or in a subquery (only
    those: the cache key of a statement grows with every option it carries). Built once per session and class."""
    made = session.info.setdefault(_OPTIONS, {})
    dialect = session.get_bind().dialect.name
    out = []
    for cls in _entities(statement):
        option = made.get(cls)
        if option is None:
            spec = spec_of(cls)
            option = made[cls] = False if spec is None or isinstance(spec, Global) else with_loader_criteria(
                cls, criterion(spec, partial(getattr, cls), site_ids, dialect), include_aliases=True)
        if option is not False:
            out.append(option)
    return out


def _entities(statement: Any) -> set[type]:
    """The mapped classes (of entities, their columns and aliases) anywhere in a statement."""
    found = set()
    for element in visitors.iterate(statement):
        entity = element._annotations.get("parententity")
        if entity is not None:
            found.add(entity.class_)
    return found


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: Any) -> None:
    site_ids = state.session.info.get(_KEY)
    if site_ids is None or not state.is_orm_statement or state.is_column_load or state.is_relationship_load:
        return
    if (state.is_select or state.is_update or state.is_delete) and not state.execution_options.get(ALL_SITES):
        options = _options(state.session, site_ids, state.statement)
        if options:
            state.statement = state.statement.options(*options)


# --- writing: rows added or changed must belong to the scope ----------------------------------------------


@event.listens_for(Session, "before_flush")
def _check_writes(session: Session, _context: Any, _instances: Any) -> None:
    site_ids = session.info.get(_KEY)
    if site_ids is None:
        return
    with session.no_autoflush:
        for obj in [*session.new, *session.dirty]:
            spec = spec_of(type(obj))
            if isinstance(spec, BySite) and getattr(obj, spec.column) not in site_ids:
                raise forbidden("site", "this site")
            if isinstance(spec, ListedSites):
                _check_listed(session, obj, spec, site_ids)
            if isinstance(spec, Through):
                _check_links(session, obj, spec)


def _check_listed(session: Session, obj: Any, spec: ListedSites, site_ids: frozenset[int]) -> None:
    value = getattr(obj, spec.column)
    listed = (value or {}).get(spec.path) if spec.path else value
    allowed = site_codes(session) if spec.key == "code" else site_ids
    if not listed or not set(listed) <= allowed:
        raise forbidden(spec.path or spec.column, "sites other than its own (or every site)")


def _check_links(session: Session, obj: Any, spec: Through) -> None:
    """A new row (or a changed link) must refer to a row the scope sees; a row referring to nothing would be
    visible to no site-limited key."""
    state = obj.__dict__.get("_sa_instance_state")
    links = [(name, table, getattr(obj, name)) for name, table in spec.links]
    if state is not None and state.persistent and not any(
            state.attrs[name].history.has_changes() for name, _, _ in links):
        return
    if all(value is None for _, _, value in links):
        raise forbidden(spec.links[0][0], "data that belongs to no site: name one of its sites' "
                        + " or ".join(table for _, table in spec.links))
    for name, table, value in links:
        parent = _CLASSES[table]
        if value is None or identity_key(parent, value) in session.identity_map:
            continue
        if session.scalar(select(parent.id).where(parent.id == value)) is None:
            raise NotFound(name, f"{name.removesuffix('_id')} {value} not found")
