"""`retento bench api`: a real server in its own process, driven over loopback at a fixed request rate.

Open loop: requests are sent on a schedule (rate × duration), whether or not earlier ones have finished, and each
latency is measured from its scheduled send time, so a stalled server shows up in p99 instead of slowing the
load down. The baseline is a bare hello-world route added to the same app, measured in the same run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from retento.bench.targets import Target

SERVER = "retento.bench.api"


@dataclass
class Result:
    name: str
    rate: int
    sent: int
    ok: int
    errors: int
    elapsed: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def seed(url: str) -> tuple[int, str]:
    """Migrate, then a site, a customer and an API key; returns (customer id, key)."""
    from retento.apikeys import service as apikeys
    from retento.bootstrap import bootstrap
    from retento.config import Settings
    from retento.customers import service as customers
    from retento.db import transaction
    from retento.history.schemas import ChangeContext, Source
    from retento.migrate import migrate
    from retento.sites import service as sites
    from retento.sites.schemas import SiteCreate

    app = bootstrap(Settings(database_url=url))
    migrate(app)
    now = app.clock.now()
    with transaction(app.sessions) as s:
        sites.create_site(s, data=SiteCreate(code="bench", name="Bench"), now=now)
        c = customers.create(s, data=customers.parse_create(s, {"site": "bench", "email": "bench@example.com"}),
                             ctx=ChangeContext.system(Source.SYSTEM), now=now)
        _, raw = apikeys.create(s, name="bench", scopes="all", now=now)
        cid = c.id
    app.close()
    return cid, raw


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(target: Target, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RETENTO_DATABASE_URL": target.url, "RETENTO_API_RATE_BURST": "1000000000",
           "RETENTO_API_RATE_PER_SECOND": "1000000000"}
    proc = subprocess.Popen([sys.executable, "-m", SERVER, str(port)], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/bench/hello", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("the API server did not start in 30 s")


Request = Callable[[httpx.AsyncClient, int], Any]


async def drive(base: str, key: str, name: str, make: Request, *, rate: int, seconds: float,
                tick: Callable[[], None] | None = None) -> Result:
    """Send rate × seconds requests on schedule; latency from the scheduled time to the full response."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, limits=limits, timeout=30) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def one(i: int, at: float) -> None:
            nonlocal errors
            try:
                resp = await make(client, i)
                if resp.status_code >= 400:
                    errors += 1
                else:
                    latencies.append(loop.time() - at)
            except httpx.HTTPError:
                errors += 1
            if tick:
                tick()

        tasks = []
        for i in range(total):
            at = start + i / rate
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, at)))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - start
    ms = [x * 1000 for x in latencies]
    return Result(name, rate, total, len(latencies), errors, elapsed, percentile(ms, 0.5), percentile(ms, 0.99),
                  max(ms) if ms else float("nan"))


def scenarios(customer_id: int) -> list[tuple[str, Request]]:
    return [
        ("GET /bench/hello (baseline)", lambda c, i: c.get("/bench/hello")),
        ("GET /api/v1/customers/{id}", lambda c, i: c.get(f"/api/v1/customers/{customer_id}")),
        ("POST /api/v1/events", lambda c, i: c.post("/api/v1/events", json={
            "name": "bench_view", "customer": {"id": customer_id}, "payload": {"n": i}})),
    ]


def run(target: Target, *, rate: int, seconds: float, warmup: float, progress: Any) -> list[Result]:
    customer_id, key = seed(target.url)
    port = free_port()
    proc = start_server(target, port)
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        for name, make in scenarios(customer_id):
            asyncio.run(drive(base, key, name, make, rate=rate, seconds=warmup))
            task = progress.add_task(f"{target.backend}: {name}", total=int(rate * seconds))
            results.append(asyncio.run(drive(base, key, name, make, rate=rate, seconds=seconds,
                                             tick=lambda t=task: progress.advance(t))))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return results


def main() -> None:
    """The server process: the real app (no worker) plus a bare hello-world route, one uvicorn process."""
    import uvicorn

    from retento.api import create_app
    from retento.bootstrap import bootstrap

    api = create_app(bootstrap())

    @api.get("/bench/hello", include_in_schema=False)
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    uvicorn.run(api, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
