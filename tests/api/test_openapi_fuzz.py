"""schemathesis against /api/openapi.json of a real server: no server errors, no response outside the schema.

Every operation gets a bounded number of valid (positive) and invalid (negative) requests.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from retento.bootstrap import bootstrap
from retento.config import Settings
from tests import factories as f
from tests.api.conftest import Server, make_key

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture
def fuzzed(app, clock):
    """A server whose rate limit does not get in the way, with a site, a product, a customer and an order."""
    a = bootstrap(Settings(database_url=app.settings.database_url, api_rate_burst=10**9), clock=clock)
    f.site(a, "shop")
    f.product(a, "SKU-1")
    cid = f.customer(a, external_id="c1", email="c1@example.com")
    f.order(a, external_id="o1", customer={"id": cid})
    _, raw = make_key(a)
    with Server(a) as srv:
        yield srv, raw
    a.close()


def test_openapi(fuzzed):
    srv, raw = fuzzed
    schema = schemathesis.openapi.from_url(f"{srv.url}/api/openapi.json")
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    plan = [(op, mode, n) for op in operations
            for mode, n in ((GenerationMode.POSITIVE, 12), (GenerationMode.NEGATIVE, 8))]
    for operation, mode, examples in plan:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def run(case):
            case.call_and_validate(base_url=srv.url, headers={"X-API-Key": raw}, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no invalid request
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures[f"{operation.label} ({mode.value})"] = str(exc)[:1500]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
