"""/api/v1 customers and custom events: thin routes over customers.service."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from retento import bulk
from retento.apikeys.api import require
from retento.apikeys.idempotency import Idempotency, idempotency
from retento.apikeys.schemas import Principal
from retento.contacts import normalize_email, normalize_phone
from retento.core import limits, scoping
from retento.core.db.engine import read_connection
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, NotFound
from retento.core.rest.pagination import CreatedFrom, CreatedTo, CursorParam, Limit, SiteParam
from retento.core.rest.problems import json_response, respond, router as v1_router
from retento.customers import merges, merging, queries, service
from retento.customers.schemas import CustomerCreate, CustomerEdit, EntryPoint
from retento.routes import app_of, create_in_site, edit_and_return, list_page
from retento.sites.models import Site
from retento.sites.service import get_site, list_sites, site_code, site_codes

router = v1_router("customers")
Id = Annotated[int, Path(gt=0, le=2**53, description="Retento's customer id")]


class _SiteRegionPhone:
    """Phone numbers are normalised by the service in the site's region, not here."""

    @field_validator("phone", "whatsapp_id")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return v


class CustomerIn(_SiteRegionPhone, CustomerCreate):
    manager_id: int | None = Field(None, gt=0, le=2**31 - 1)
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "site": "shop", "external_id": "c-1001", "first_name": "Anna", "last_name": "Ivanova",
        "email": "anna@example.com", "phone": "+79161234567", "tags": ["vip"],
        "consents": {"email": {"granted": True, "source": "checkout"}}}]})


class CustomerPatch(_SiteRegionPhone, CustomerEdit):
    external_id: str | None = Field(None, min_length=1, max_length=64)
    manager_id: int | None = Field(None, gt=0, le=2**31 - 1)
    model_config = ConfigDict(json_schema_extra={"examples": [{"last_name": "Petrova", "tags": ["vip", "b2b"]}]})


class ConsentOut(BaseModel):
    granted: bool
    at: dt.datetime
    source: str


class CustomerOut(BaseModel):
    id: int
    site: str
    external_id: str | None
    first_name: str | None
    last_name: str | None
    patronymic: str | None
    email: str | None
    phone: str | None
    telegram_id: str | None
    whatsapp_id: str | None
    vk_id: str | None
    birthday: dt.date | None
    personal_dates: dict[str, dt.date]
    timezone: str | None
    locale: str | None
    custom_fields: dict[str, Any]
    tags: list[str]
    interests: list[str]
    entry_point: EntryPoint | None
    email_confirmed: bool
    email_confirmed_at: dt.datetime | None
    consents: dict[str, ConsentOut]
    manager_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 17, "site": "shop", "external_id": "c-1001", "first_name": "Anna", "last_name": "Ivanova",
        "patronymic": None, "email": "anna@example.com", "phone": "+79161234567", "telegram_id": None,
        "whatsapp_id": None, "vk_id": None, "birthday": None, "personal_dates": {}, "timezone": None, "locale": None,
        "custom_fields": {}, "tags": ["vip"], "interests": [], "entry_point": None, "email_confirmed": False,
        "email_confirmed_at": None,
        "consents": {"email": {"granted": True, "at": "2026-03-02T09:00:00Z", "source": "checkout"}},
        "manager_id": None, "created_at": "2026-03-02T09:00:00Z", "updated_at": "2026-03-02T09:00:00Z"}]})


CUSTOMER_FIELDS = tuple(CustomerOut.model_fields)


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": CustomerOut.model_config["json_schema_extra"]["examples"], "next_cursor": "aWQ6NDI"}]})


def out(session: Session, customers: list[Any]) -> list[CustomerOut]:
    codes = site_codes(session)
    return [CustomerOut(**{**snap, "site": codes[snap["site_id"]]}) for snap in queries.snapshots(session, customers)]


def edit_data(session: Session, customer: Any, raw: dict[str, Any]) -> CustomerCreate:
    """Validate an edit (external_id included) in the customer's site region; only the given fields are set."""
    code = site_code(session, customer.site_id)
    raw = {k: v for k, v in raw.items() if k not in ("site", "created_at")}
    if "email_confirmed" in raw and raw["email_confirmed"] is None:
        raise DomainError.one("email_confirmed", "may not be null: give true or false, or leave it out")
    data = service.parse_create(session, {**raw, "site": code})
    data.model_fields_set.discard("site")
    return data


@router.post("/customers", status_code=201, response_model=CustomerOut, summary="Create a customer")
def create_customer(
    body: CustomerIn, request: Request, principal: Annotated[Principal, Depends(require("customers:write"))],
    idem: Annotated[Idempotency, Depends(idempotency)],
) -> Response:
    def make(s: Session, now: dt.datetime) -> CustomerOut:
        data = service.parse_create(s, body.model_dump(exclude_unset=True, mode="json"))
        return out(s, [service.create(s, data=data, ctx=principal.ctx, now=now)])[0]

    return create_in_site(request, principal, idem, body.site, make)


CustomerBatchIn = bulk.batch_in("customer", CustomerIn.model_config["json_schema_extra"]["examples"][0])


@router.post("/customers/batch", response_model=bulk.BatchOut,
             summary=f"Create or update up to {bulk.MAX_ITEMS:,} customers",
             description="Upsert on `external_id` per site; a bad item is reported (`items.N.field`) and the others "
                         "are stored. See docs/api.md, Batch upserts.")
def upsert_customers(
    body: CustomerBatchIn, request: Request,  # type: ignore[valid-type]
    principal: Annotated[Principal, Depends(require("customers:write"))],
    idem: Annotated[Idempotency, Depends(idempotency)],
) -> Response:
    def parse(s: Session, raw: Any) -> CustomerCreate:
        return service.parse_create(s, bulk.validated(CustomerIn, raw).model_dump(exclude_unset=True, mode="json"))

    return bulk.upsert(request, principal, idem, body.items, parse=parse, store=service.upsert_many)


@router.get("/customers/{customer_id}", response_model=CustomerOut, summary="Get a customer")
async def get_customer(customer_id: Id, request: Request,
                       principal: Annotated[Principal, Depends(require("customers:read"))]) -> Response:
    """One indexed read that waits for no lock. On SQLite (a local file; WAL readers never wait for the writer)
    it runs on the event loop: it takes less time than the hop to a worker thread and back. On PostgreSQL it
    runs in a thread, so that requests overlap their network round trips instead of queueing behind them."""
    engine = app_of(request).engine
    if engine.dialect.name == "sqlite":
        snap = _read_customer(engine, principal, customer_id)
    else:
        snap = await run_in_threadpool(_read_customer, engine, principal, customer_id)
    return json_response(snap)


def _read_customer(engine: Engine, principal: Principal, customer_id: int) -> dict[str, Any]:
    """The customer as CustomerOut's fields, from one statement; NotFound unless the key may see its site."""
    with read_connection(engine) as conn:
        snaps = queries.read_snapshots(conn, [customer_id])
        if not snaps or not principal.may_see(snaps[0]["site_id"]):
            gone = {} if snaps else merges.merged_into(conn, [customer_id], site_ids=principal.site_ids)
            raise merges.not_found("id", customer_id, gone)
        snap = {**snaps[0], "site": site_code(conn, snaps[0]["site_id"])}
    return {name: snap[name] for name in CUSTOMER_FIELDS}


@router.patch("/customers/{customer_id}", response_model=CustomerOut, summary="Edit a customer",
              description="Only the fields present change; `custom_fields` are merged, `tags` replaced.")
def edit_customer(customer_id: Id, body: CustomerPatch, request: Request,
                  principal: Annotated[Principal, Depends(require("customers:write"))]) -> Any:
    def change(s: Session, customer: Any, now: dt.datetime) -> None:
        data = edit_data(s, customer, body.model_dump(exclude_unset=True, mode="json"))
        service.edit(s, customer=customer, data=data, ctx=principal.ctx, now=now)

    return edit_and_return(request, lambda s: service.get(s, customer_id), change,
                           lambda s, customer: out(s, [customer])[0])


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"site": "shop", "keep": 17,
                                                                               "merge": [42, 43]}]})

    site: str = Field(min_length=1, max_length=64, description="Site (shop) code of every customer named")
    keep: int = Field(gt=0, le=2**53, description="The customer that stays")
    merge: list[Annotated[int, Field(gt=0, le=2**53)]] = Field(
        min_length=1, max_length=merging.MAX_MERGED, description="The duplicates merged into `keep` and deleted")


class MergeOut(BaseModel):
    customer: CustomerOut
    merged: list[int] = Field(description="The ids merged by this request (empty when they were merged before)")
    moved: dict[str, int] = Field(description="Per kind of record (orders, inbox_dialogs, ...): how many moved")


@router.post("/customers/merge", response_model=MergeOut, summary="Merge duplicate customers into one",
             description="One transaction: the kept customer takes the fields it lacks, every domain's records of "
                         "the duplicates move to it, the duplicates are deleted and their ids answer 404 naming the "
                         "kept customer. Merging again what was merged changes nothing. See docs/api.md, Merging "
                         "duplicate customers.")
def merge_customers(body: MergeIn, request: Request,
                    principal: Annotated[Principal, Depends(require("customers:write"))],
                    idem: Annotated[Idempotency, Depends(idempotency)]) -> Response:
    app = app_of(request)
    with transaction(app.sessions) as s:
        def produce() -> MergeOut:
            done = merging.merge(s, site=body.site, keep_id=body.keep, merge_ids=body.merge, ctx=principal.ctx,
                                 now=app.clock.now())
            return MergeOut(customer=out(s, [service.get(s, done.keep_id)])[0], merged=done.merged_ids,
                            moved=done.moved)

        result = idem.run(s, principal, produce, now=app.clock.now(), status=200)
    return respond(result)


@router.get("/customers", response_model=CustomerPage, summary="List customers",
            description="Oldest first; every filter given must match. Page on with `cursor`.")
def list_customers(
    request: Request,
    principal: Annotated[Principal, Depends(require("customers:read"))],
    site: SiteParam = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    phone: Annotated[str | None, Query(max_length=32)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    external_id: Annotated[str | None, Query(max_length=64)] = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    cursor: CursorParam = None,
    limit: Limit = 50,
) -> Any:
    def fetch(s: Session, site_ids: list[int] | None, after_id: int, n: int) -> list[Any]:
        region = s.get(Site, site_ids[0]).default_region if site and site_ids else "RU"
        try:
            email_ = normalize_email(email) if email else None
        except ValueError as exc:
            raise DomainError.one("email", str(exc)) from None
        try:
            phone_ = normalize_phone(phone, region) if phone else None
        except ValueError as exc:
            raise DomainError.one("phone", str(exc)) from None
        return queries.list_customers(s, site_ids=site_ids, email=email_, phone=phone_, tag=tag,
                                      external_id=external_id, created_from=created_from, created_to=created_to,
                                      after_id=after_id, limit=n)

    return list_page(request, site, cursor, limit, fetch, out, CustomerPage)


# --- custom events ----------------------------------------------------------------------------------------


class CustomerKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int | None = Field(None, gt=0, le=2**53)
    external_id: str | None = Field(None, min_length=1, max_length=64)
    site: str | None = Field(None, min_length=1, max_length=64, description="Needed with external_id")


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "cart_abandoned", "customer": {"external_id": "c-1001", "site": "shop"},
        "payload": {"cart_total": "4990.00", "items": 3}, "idempotency_key": "cart-77-abandoned"}]})

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$",
                      description="The shop's own event name")
    customer: CustomerKey
    payload: Annotated[dict[str, Any], AfterValidator(limits.json_size())] = Field(
        default_factory=dict, description=f"Free-form JSON object, at most {limits.FREE_FORM_BYTES} bytes")
    idempotency_key: str | None = Field(None, min_length=1, max_length=150,
                                        description="The same key on the same site is recorded once")


class EventResult(BaseModel):
    accepted: bool = Field(description="false: an event with this idempotency_key was recorded before")

    model_config = ConfigDict(json_schema_extra={"examples": [{"accepted": True}]})


class EventBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=1000)


class EventBatchOut(BaseModel):
    accepted: int
    duplicates: int
    results: list[EventResult]

    model_config = ConfigDict(json_schema_extra={"examples": [{"accepted": 2, "duplicates": 1, "results": [{"accepted": True}, {"accepted": True}, {"accepted": False}]}]})


def _record_events(s: Session, principal: Principal, events: list[EventIn], now: dt.datetime,
                   prefix: Any) -> list[EventResult]:
    needs_site = any(e.customer.external_id is not None for e in events)
    sites = {site.code: site for site in list_sites(s)} if needs_site else {}
    by_ext: set[tuple[int, str]] = set()
    for n, e in enumerate(events):
        key = e.customer
        if (key.id is None) == (key.external_id is None):
            raise DomainError.one(f"{prefix(n)}customer", "give exactly one of id or external_id")
        if key.external_id is not None:
            site = sites.get(key.site) if key.site else _only_site(sites)
            if site is None and key.site:
                get_site(s, key.site, field=f"{prefix(n)}customer.site")  # another site's: 403; else 404
            if site is None:
                raise DomainError.one(f"{prefix(n)}customer.site", "give the site: the API key may use several")
            by_ext.add((site.id, key.external_id))
    ext_ids = queries.ids_by_external(s, by_ext)
    wanted = {e.customer.id for e in events if e.customer.id} | set(ext_ids.values())
    customers = queries.refs_by_ids(s, wanted)
    results = []
    for n, e in enumerate(events):
        key = e.customer
        if key.id is not None:
            customer = customers.get(key.id)
        else:
            site = sites.get(key.site) if key.site else _only_site(sites)
            customer = customers.get(ext_ids.get((site.id, key.external_id), 0))
        if customer is None or not scoping.allows(s, customer.site_id):  # read by id without the ORM
            raise NotFound(f"{prefix(n)}customer", "customer not found")
        idem = f"custom:{customer.site_id}:{e.idempotency_key}" if e.idempotency_key else None
        accepted = service.emit_custom_event(s, customer=customer, name=e.name, payload=e.payload,
                                             ctx=principal.ctx, now=now, idempotency_key=idem)
        results.append(EventResult(accepted=accepted))
    return results


def _only_site(sites: dict[str, Site]) -> Site | None:
    """The site implied when none is named: the key's only site, or the installation's only site (`sites` are
    the ones the session sees)."""
    return next(iter(sites.values())) if len(sites) == 1 else None


@router.post("/events", status_code=201, response_model=EventResult, tags=["events"],
             summary="Record one custom event")
def post_event(body: EventIn, request: Request, principal: Annotated[Principal, Depends(require("events:write"))],
               idem: Annotated[Idempotency, Depends(idempotency)]) -> Any:
    app = app_of(request)

    def write(s: Session) -> Any:  # in a transaction shared with other requests' events (group commit)
        return idem.run(s, principal, lambda: _record_events(s, principal, [body], app.clock.now(), lambda n: "")[0],
                        now=app.clock.now())

    return respond(app.group_commit.run(write), 201)


@router.post("/events/batch", status_code=201, response_model=EventBatchOut, tags=["events"],
             summary="Record up to 1,000 custom events at once",
             description="All or nothing: a bad event (named by its index) rejects the batch.")
def post_events(body: EventBatchIn, request: Request,
                principal: Annotated[Principal, Depends(require("events:write"))],
                idem: Annotated[Idempotency, Depends(idempotency)]) -> Any:
    app = app_of(request)

    def produce() -> EventBatchOut:
        results = _record_events(s, principal, body.events, app.clock.now(), lambda n: f"events.{n}.")
        accepted = sum(r.accepted for r in results)
        return EventBatchOut(accepted=accepted, duplicates=len(results) - accepted, results=results)

    with transaction(app.sessions) as s:
        return idem.run(s, principal, produce, now=app.clock.now())

