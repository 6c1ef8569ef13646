"""schemathesis against both OpenAPI documents of a real server, /api/openapi.json (the native API) and
/api/v5/openapi.json (the RetailCRM v5 layer): no server errors, no answer outside the document.

Every operation gets a bounded number of valid (positive) and invalid (negative) requests, derandomized (a
fixed seed), so CI costs a few minutes. The nightly-size run sends many more: `make test-fuzz` (see FUZZ).
The v5 `customer` / `order` form fields hold JSON; besides schemathesis' strings they get entities drawn by
ENTITIES below, so the mapping and the services behind them are fuzzed too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)

from retento.bootstrap import bootstrap
from retento.compat.api import openapi_document, router as v5_router
from retento.compat.loyalty import router as loyalty_router
from retento.compat.upload import router as upload_router
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.loyalty import service
from retento.loyalty.schemas import JoinIn
from tests import factories as f
from tests.api.conftest import Server, make_key
from tests.loyalty.helpers import CTX, program

# Every check schemathesis has but three: positive_data_acceptance (a request valid by the document may still
# name a site or product that does not exist, which is rightly a 4xx), negative_data_rejection (the native API
# reads `true` for an integer id or "5" for a number as the value they mean, pydantic's lax mode, where the
# document says integer; booleans are strict, see parsing.Flag) and max_response_time (a shared CI machine).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, missing_required_header, unsupported_method, use_after_free,
          ensure_resource_availability, ignored_auth]
V5_CHECKS = [*CHECKS, negative_data_rejection]  # v5 reads every parameter by hand, as strictly as it documents
CI = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 8}  # examples per operation in every test run
FUZZ = {GenerationMode.POSITIVE: 300, GenerationMode.NEGATIVE: 150}  # nightly: pytest -m fuzz


@pytest.fixture
def fuzzed(app, clock):
    """A server whose rate limit does not get in the way, with a site, a product, a customer and an order."""
    a = bootstrap(Settings(database_url=app.settings.database_url, api_rate_burst=10**9), clock=clock)
    f.site(a, "shop")
    f.product(a, "SKU-1")
    cid = f.customer(a, external_id="c1", email="c1@example.com")
    f.order(a, external_id="o1", customer={"id": cid})
    program(a, welcome_bonus="100", activation_days=0)  # loyalty program 1, customer c1's account 1
    with transaction(a.sessions) as s:
        service.join(s, data=JoinIn(site="shop", customer_id=cid), ctx=CTX, now=a.clock.now())
    _, raw = make_key(a)
    with Server(a) as srv:
        yield srv, raw
    a.close()


# --- v5 entities: what a shop might put in the `customer` / `order` JSON ----------------------------------

_scalar = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
           | st.sampled_from(["", "1e30", "-1", "¹", "2026-01-10 12:00:00", "0001-01-01", "shop", "SKU-1", "c1"]))
_json = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)


def mostly(valid: st.SearchStrategy) -> st.SearchStrategy:
    """A value of the right kind three times in four, any JSON else."""
    return st.one_of(valid, valid, valid, _json)


_money = mostly(st.integers(0, 10**5) | st.sampled_from(["10.50", "0", 1e30, "1e30", -5, "x"]))
_item = st.fixed_dictionaries({}, optional={
    "offer": mostly(st.fixed_dictionaries({"externalId": st.sampled_from(["SKU-1", "NOPE"])})),
    "productName": mostly(st.text(min_size=1, max_size=20)), "initialPrice": _money,
    "quantity": mostly(st.integers(1, 5)), "discountManualAmount": _money, "discountManualPercent": _money})
_common = {
    "externalId": mostly(st.text(min_size=1, max_size=10)), "site": mostly(st.just("shop")),
    "customFields": mostly(st.dictionaries(st.text(min_size=1, max_size=8), _scalar | st.integers(), max_size=3)),
    "createdAt": mostly(st.sampled_from(["2026-01-10 12:00:00", "2026-01-10", "1899-12-31", "9999-12-31 23:59:59"])),
    "managerId": _json, "email": mostly(st.emails()), "firstName": mostly(st.text(max_size=20))}
ENTITIES = {
    "customer": st.fixed_dictionaries({}, optional={
        **_common, "phones": mostly(st.lists(st.fixed_dictionaries({"number": st.sampled_from(["+79161234567", "12"])}),
                                             max_size=2)),
        "tags": mostly(st.lists(st.text(min_size=1, max_size=10), max_size=3)), "subscribed": mostly(st.booleans()),
        "birthday": mostly(st.sampled_from(["1990-05-01", "1990-02-30"]))}),
    "order": st.fixed_dictionaries({"items": mostly(st.lists(_item, min_size=1, max_size=3))}, optional={
        **_common, "number": mostly(st.text(min_size=1, max_size=10)),
        "status": mostly(st.sampled_from(["new", "complete", "nope"])), "currency": mostly(st.just("RUB")),
        "customer": mostly(st.fixed_dictionaries({}, optional={"id": st.integers(0, 3), "externalId": st.just("c1")})),
        "phone": mostly(st.sampled_from(["+79161234567", "x"])), "discountManualAmount": _money,
        "delivery": mostly(st.fixed_dictionaries({}, optional={
            "code": mostly(st.just("courier")), "cost": _money, "date": mostly(st.just("2026-03-05")),
            "address": mostly(st.dictionaries(st.text(max_size=5), _scalar | st.integers(), max_size=3))})),
        "payments": mostly(st.lists(st.fixed_dictionaries({}, optional={
            "type": mostly(st.just("cash")), "status": mostly(st.just("paid")), "amount": _money}), max_size=2))}),
}
KNOWN_IDS = st.sampled_from(["c1", "o1", "1", "2"])  # the fixture's customer and order, by externalId and id


def with_entities(operation: Any, strategy: st.SearchStrategy) -> st.SearchStrategy:
    """Valid v5 cases whose form field `customer` / `order` (`customers` / `orders`: a list of them) holds,
    more often than not, drawn entities, and whose path names, now and then, the customer or order that exists."""
    name = next((n for n in ENTITIES if f"/{n}s" in operation.path), None)
    entity: st.SearchStrategy = st.none()
    if name and operation.method.upper() == "POST":
        upload = operation.path.endswith("/upload")
        field = f"{name}s" if upload else name
        entity = st.lists(ENTITIES[name], min_size=1, max_size=4) if upload else ENTITIES[name]
    uid = KNOWN_IDS if "{externalId}" in operation.path else st.just("1") if "{id}" in operation.path else st.none()

    def put(drawn: tuple[Any, Any, Any]) -> Any:
        case, value, known = drawn
        if value is not None and isinstance(case.body, dict):
            case.body = {**case.body, field: json.dumps(value)}
        if known is not None:
            case.path_parameters = {**(case.path_parameters or {}),
                                    ("id" if "{id}" in operation.path else "externalId"): known}
        return case

    return st.tuples(strategy, st.none() | entity, st.none() | uid).map(put)


# --- the run ----------------------------------------------------------------------------------------------


def fuzz(url: str, headers: dict[str, str], examples: dict[GenerationMode, int], *, checks: list = CHECKS,
         shape: Callable[[Any, st.SearchStrategy], st.SearchStrategy] = lambda op, s: s) -> tuple[int, dict]:
    """Every operation of the document at `url` with `examples` cases per generation mode, every check;
    (operations, {operation (mode): failure})."""
    schema = schemathesis.openapi.from_url(url)
    schema.config.generation.update(with_security_parameters=False)  # the key is ours to send, not to fuzz
    operations = [result.ok() for result in schema.get_all_operations()]
    failures: dict[str, str] = {}
    for operation in operations:
        for mode, count in examples.items():
            cases = operation.as_strategy(generation_mode=mode)  # a negative case keeps what makes it invalid
            @given(case=shape(operation, cases) if mode is GenerationMode.POSITIVE else cases)
            @settings(max_examples=count, deadline=None, suppress_health_check=list(HealthCheck),
                      derandomize=True, database=None)
            def run(case: Any) -> None:
                case.call_and_validate(base_url=url.split("/api/")[0], headers=headers, checks=checks)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no invalid request
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
                failures[f"{operation.label} ({mode.value})"] = str(exc)[:1500]
    return len(operations), failures


def report(failures: dict[str, str]) -> str:
    return "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


def test_native_document(fuzzed):
    srv, raw = fuzzed
    count, failures = fuzz(f"{srv.url}/api/openapi.json", {"X-API-Key": raw}, CI)
    assert count >= 20
    assert not failures, report(failures)


def test_v5_document(fuzzed):
    srv, raw = fuzzed
    count, failures = fuzz(f"{srv.url}/api/v5/openapi.json", {"X-API-KEY": raw}, CI, checks=V5_CHECKS,
                           shape=with_entities)
    assert count >= 15
    assert not failures, report(failures)


def test_v5_document_describes_every_v5_route():
    """A route added to compat/api.py without its place in openapi.yaml fails here."""
    served = {(m.lower(), route.path.replace("{uid}", "{id}" if "/loyalty/" in route.path else "{externalId}"))
              for route in [*v5_router.routes, *upload_router.routes, *loyalty_router.routes]
              for m in route.methods if not route.path.endswith(("/{path:path}", "/openapi.json"))}
    documented = {(m, path) for path, ops in openapi_document()["paths"].items() for m in ops}
    assert served == documented


@pytest.mark.fuzz
@pytest.mark.parametrize("document", ["native", "v5"])
def test_nightly(fuzzed, document):
    """The nightly-size run: `pytest -m fuzz tests/api/test_openapi_fuzz.py` (not part of a plain run)."""
    srv, raw = fuzzed
    if document == "native":
        _, failures = fuzz(f"{srv.url}/api/openapi.json", {"X-API-Key": raw}, FUZZ)
    else:
        _, failures = fuzz(f"{srv.url}/api/v5/openapi.json", {"X-API-KEY": raw}, FUZZ, checks=V5_CHECKS,
                           shape=with_entities)
    assert not failures, report(failures)
