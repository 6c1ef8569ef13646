"""`retento bench api`: a real server in its own process, driven over loopback at a fixed request rate.

Open loop: requests are sent on a schedule (rate × duration), whether or not earlier ones have finished, and each
latency is measured from its scheduled send time, so a stalled server shows up in p99 instead of slowing the
load down. The baseline is a bare hello-world route added to the same app, measured in the same run.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import socket
import subprocess
import sys
import threading
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


# (method, path, JSON body or None) of the i-th request
Request = Callable[[int], tuple[str, str, bytes | None]]


def drive(port: int, key: str, name: str, make: Request, *, rate: int, seconds: float,
          tick: Callable[[], None] | None = None, connections: int = 64) -> Result:
    """Send rate × seconds requests on schedule; latency from the scheduled time to the full response.

    A scheduler releases request i at start + i / rate; `connections` threads with keep-alive connections
    (http.client: little client CPU, so the server is what is measured) take them as they come.
    """
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = [0]
    due: queue.Queue[tuple[int, float] | None] = queue.Queue()
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while (item := due.get()) is not None:
            i, at = item
            method, path, body = make(i)
            headers = {"X-API-Key": key, "Content-Type": "application/json"}
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status < 400
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                ok = False
            done = time.perf_counter()
            with lock:
                if ok:
                    latencies.append(done - at)
                else:
                    errors[0] += 1
            if tick:
                tick()
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    for i in range(total):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due.put((i, at))
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    ms = [x * 1000 for x in latencies]
    return Result(name, rate, total, len(latencies), errors[0], elapsed, percentile(ms, 0.5), percentile(ms, 0.99),
                  max(ms) if ms else float("nan"))


def scenarios(customer_id: int) -> list[tuple[str, Request]]:
    return [
        ("GET /bench/hello (baseline)", lambda i: ("GET", "/bench/hello", None)),
        ("GET /api/v1/customers/{id}", lambda i: ("GET", f"/api/v1/customers/{customer_id}", None)),
        ("POST /api/v1/events", lambda i: ("POST", "/api/v1/events", json.dumps({
            "name": "bench_view", "customer": {"id": customer_id}, "payload": {"n": i}}).encode())),
    ]


def run(target: Target, *, rate: int, seconds: float, warmup: float, progress: Any) -> list[Result]:
    customer_id, key = seed(target.url)
    port = free_port()
    proc = start_server(target, port)
    results = []
    try:
        for name, make in scenarios(customer_id):
            drive(port, key, name, make, rate=rate, seconds=warmup)
            task = progress.add_task(f"{target.backend}: {name}", total=int(rate * seconds))
            results.append(drive(port, key, name, make, rate=rate, seconds=seconds,
                                 tick=lambda t=task: progress.advance(t)))
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
