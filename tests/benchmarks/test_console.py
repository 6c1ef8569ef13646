"""`retento bench console` keeps working and measures every console page (no timing assertions: figures belong in
docs/benchmarks.md)."""

import re

from starlette.routing import Route
from typer.testing import CliRunner

from benchmarks.console import SKIP
from retento.bootstrap import bootstrap
from retento.cli import app
from retento.core.config import Settings


def test_bench_console_measures_every_registered_get_route_on_sqlite():
    result = CliRunner().invoke(app, ["bench", "console", "--backends", "sqlite", "--customers", "40", "--orders",
                                      "120", "--requests", "5", "--runs", "50"])
    assert result.exit_code == 0, result.output
    # every route's parameters have a sample (a dead letter's id only when the data has one)
    missing = re.findall(r"not measured: (.*)", result.output)
    assert not missing or all("(no sample for row_id)" in m for m in missing[0].split("; ")), missing
    measured = re.findall(r"\| SQLite [\d.]+ \| `([^`]+)`( \(HTTP \d+\))?", result.output)
    assert measured and not [p for p, failed in measured if failed]  # every page answered 200
    shown = {p.split("?")[0] for p, _ in measured}
    routes = bootstrap(Settings(database_url="sqlite://")).parts.console_pages.values()
    for page in routes:
        for route in page.router.routes:
            if isinstance(route, Route) and "GET" in route.methods and route.path not in SKIP:
                pattern = re.sub(r"{\w+(:\w+)?}", r"[^/]+", route.path)
                assert any(re.fullmatch(pattern, p) for p in shown) or "{row_id}" in route.path, route.path
