"""`retento bench api`: a real server in its own process, driven over loopback at a fixed request rate.

The `inbox` route is the inbound webhook of the inbox (`retento bench inbox` runs it): Telegram updates of 2,000
customers, one in ten a repeat of an update sent just before (stored once: idempotency), while one operator's
live stream (`/api/v1/inbox/stream`) is open and each message's delay from its commit to that screen is taken.

Open loop: requests are sent on a schedule (rate × duration), whether or not earlier ones have finished, and each
latency is measured from its scheduled send time, so a stalled server shows up in p99 instead of slowing the
load down. The baseline is a bare hello-world route added to the same app, measured in the same run.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

from benchmarks.targets import Target

SERVER = "benchmarks.api"
CLIENTS = 16  # keep-alive connections the load generator drives the server with
TG_SECRET = "bench-telegram-secret"


@dataclass
class Result:
    name: str
    rate: int | None  # None: closed loop (capacity)
    sent: int
    ok: int
    errors: int
    elapsed: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_s: float = 0.0  # CPU seconds the server process(es) used during the measured run
    workers: int = 1
    client_cpu_s: float = 0.0  # CPU seconds the load generator used
    screen_ms: list[float] | None = None  # inbox: delays from commit to an open live stream

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu_s * 1000 / self.ok if self.ok else float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def seed(url: str) -> tuple[int, str]:
    """Migrate, then a site, a customer and an API key; returns (customer id, key)."""
    from retento.apikeys import service as apikeys
    from retento.bootstrap import bootstrap
    from retento.core.changes import ChangeContext, Source
    from retento.core.config import Settings
    from retento.core.db.transactions import transaction
    from retento.customers import service as customers
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


def start_server(target: Target, port: int, workers: int = 1, wait: float = 30) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RETENTO_DATABASE_URL": target.url, "RETENTO_API_RATE_BURST": "1000000000",
           "RETENTO_API_RATE_PER_SECOND": "1000000000", "RETENTO_TELEGRAM_WEBHOOK_SECRET": TG_SECRET}
    proc = subprocess.Popen([sys.executable, "-m", SERVER, str(port), str(workers)], env=env)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/bench/hello", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"the API server did not start in {wait:.0f} s")


# (method, path, JSON body or None) of the i-th request
Request = Callable[[int], tuple[str, str, bytes | None]]


def drive(port: int, key: str, name: str, make: Request, *, rate: int | None, seconds: float,
          tick: Callable[[int], None] | None = None, connections: int = CLIENTS) -> Result:
    """Send rate × seconds requests on schedule; latency from the scheduled time to the full response.

    One asyncio loop (uvloop where installed) speaks HTTP/1.1 keep-alive over raw streams: a scheduler releases
    request i at start + i / rate into a queue, and `connections` connections take them as they come. If every
    connection is busy a request waits in the queue, and that wait counts in its latency (open loop, no
    coordinated omission). The client does little per request (no HTTP library), so its CPU, which shares the
    machine with the server, stays small.

    `rate=None`: closed loop, for the capacity: each connection sends its next request as soon as the previous
    answer is in, for `seconds`; latency from the send.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed with uvicorn[standard] except on Windows
        return asyncio.run(_drive(port, key, name, make, rate, seconds, tick, connections))
    return uvloop.run(_drive(port, key, name, make, rate, seconds, tick, connections))


async def _drive(port: int, key: str, name: str, make: Request, rate: int | None, seconds: float,
                 tick: Callable[[int], None] | None, connections: int) -> Result:
    latencies: list[float] = []
    errors, sent = 0, 0
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    head = (f"Host: 127.0.0.1:{port}\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
            f"X-Telegram-Bot-Api-Secret-Token: {TG_SECRET}\r\n")
    end = time.perf_counter() + seconds  # closed loop: no request starts after this

    def encode(i: int) -> bytes:
        method, path, body = make(i)
        length = f"Content-Length: {len(body)}\r\n" if body is not None else ""
        return f"{method} {path} HTTP/1.1\r\n{head}{length}\r\n".encode() + (body or b"")

    async def scheduled() -> tuple[int, float] | None:
        return await due.get()

    async def at_once() -> tuple[int, float] | None:
        nonlocal sent
        now = time.perf_counter()
        if now >= end:
            return None
        sent += 1
        return sent - 1, now

    async def connection(source: Callable[[], Any]) -> None:
        nonlocal errors
        stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        done = 0
        while (item := await source()) is not None:
            i, at = item
            try:
                if stream is None:
                    stream = await asyncio.open_connection("127.0.0.1", port)
                stream[1].write(encode(i))
                status = await _response(stream[0])
                ok = status < 400
            except (OSError, ValueError, asyncio.IncompleteReadError):
                if stream is not None:
                    stream[1].close()
                stream, ok = None, False
            if ok:
                latencies.append(time.perf_counter() - at)
            else:
                errors += 1
            done += 1
            if tick and done % 25 == 0:
                tick(25)
        if tick and done % 25:
            tick(done % 25)
        if stream is not None:
            stream[1].close()

    cpu = time.process_time()
    start = time.perf_counter()
    workers = [asyncio.create_task(connection(scheduled if rate else at_once)) for _ in range(connections)]
    if rate:
        sent = int(rate * seconds)
        for i in range(sent):
            at = start + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            due.put_nowait((i, at))
        for _ in workers:
            due.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    ms = [x * 1000 for x in latencies]
    return Result(name, rate, sent, len(latencies), errors, elapsed, percentile(ms, 0.5), percentile(ms, 0.99),
                  max(ms) if ms else float("nan"), client_cpu_s=time.process_time() - cpu)


async def _response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked body); its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    return status


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live children (uvicorn's workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


ROUTES = ("hello", "customer", "event", "inbox")  # the scenarios, in the order they run


def telegram_updates() -> Request:
    """Telegram updates, numbered across calls (the warm-up's are not sent again); every tenth repeats the one
    sent five before, as Telegram repeats an update it got no answer to."""
    counter = itertools.count(1)
    recent: collections.deque[bytes] = collections.deque(maxlen=5)

    def make(i: int) -> tuple[str, str, bytes | None]:
        n = next(counter)
        if n % 10 == 0 and len(recent) == 5:
            return "POST", "/api/v1/messaging/webhooks/telegram", recent[0]
        peer = 700_000 + n % 2000
        body = json.dumps({"update_id": n, "message": {
            "message_id": n, "from": {"id": peer, "is_bot": False, "first_name": f"Guest{n % 2000}"},
            "chat": {"id": peer, "type": "private", "first_name": f"Guest{n % 2000}"}, "date": int(time.time()),
            "text": f"Where is my order {n}?"}}).encode()
        recent.append(body)
        return "POST", "/api/v1/messaging/webhooks/telegram", body
    return make


class Screen:
    """An operator's screen: the live stream open in a thread, each inbox message's delay from its commit
    (`occurred_at`, the server's clock on this machine) to its arrival here."""

    def __init__(self, port: int, key: str) -> None:
        self.delays: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._listen, args=(port, key), daemon=True)
        self.thread.start()

    def _listen(self, port: int, key: str) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(5, read=None)) as c, c.stream(
                    "GET", f"http://127.0.0.1:{port}/api/v1/inbox/stream", headers={"X-API-Key": key}) as r:
                for line in r.iter_lines():
                    if self.stop.is_set():
                        return
                    if line.startswith("data: "):
                        at = datetime.fromisoformat(json.loads(line[6:])["occurred_at"])
                        self.delays.append((datetime.now(timezone.utc) - at).total_seconds() * 1000)
        except httpx.HTTPError:  # the server stopped
            return

    def take(self) -> list[float]:
        out, self.delays = self.delays, []
        return out


def scenarios(customer_id: int) -> dict[str, tuple[str, Request]]:
    return {
        "hello": ("GET /bench/hello (baseline)", lambda i: ("GET", "/bench/hello", None)),
        "customer": ("GET /api/v1/customers/{id}", lambda i: ("GET", f"/api/v1/customers/{customer_id}", None)),
        "event": ("POST /api/v1/events", lambda i: ("POST", "/api/v1/events", json.dumps({
            "name": "bench_view", "customer": {"id": customer_id}, "payload": {"n": i}}).encode())),
        "inbox": ("POST /api/v1/messaging/webhooks/telegram (inbox)", telegram_updates()),
    }


def run(target: Target, *, rate: int, seconds: float, warmup: float, progress: Any, workers: int = 1,
        clients: int = CLIENTS, routes: tuple[str, ...] = ROUTES, capacity: bool = False) -> list[Result]:
    """Each route at `rate` from `clients` connections; with `capacity`, then as fast as they get answers."""
    customer_id, key = seed(target.url)
    port = free_port()
    proc = start_server(target, port, workers, wait=300)  # a loaded shared machine starts it slowly
    results = []
    every = scenarios(customer_id)
    screen = Screen(port, key) if "inbox" in routes else None
    try:
        for route in routes:
            name, make = every[route]
            drive(port, key, name, make, rate=rate, seconds=warmup, connections=clients)
            if screen is not None:
                screen.take()
            for pace in (rate, None) if capacity else (rate,):
                label = (f"{target.backend}, {workers} worker{'s' if workers > 1 else ''}: {name}"
                         f"{'' if pace else ' (capacity)'}")
                task = progress.add_task(label, total=int(pace * seconds) if pace else None)
                cpu = cpu_seconds(proc.pid)
                result = drive(port, key, name, make, rate=pace, seconds=seconds, connections=clients,
                               tick=lambda n, t=task: progress.advance(t, n))
                result.server_cpu_s, result.workers = cpu_seconds(proc.pid) - cpu, workers
                if screen is not None:
                    time.sleep(1.0)  # the last messages reach the screen
                    result.screen_ms = screen.take() if route == "inbox" else None
                results.append(result)
    finally:
        if screen is not None:
            screen.stop.set()
        proc.terminate()
        proc.wait(timeout=30)
    return results


def make_app() -> Any:
    """What `retento serve` runs (same process settings, no embedded worker) plus a bare hello-world route: the
    cheapest answer the app can give."""
    from retento.api import create_app
    from retento.bootstrap import bootstrap, configure_process, settle_process
    from retento.core.config import get_settings

    configure_process(get_settings())
    api = create_app(bootstrap())

    @api.get("/bench/hello", include_in_schema=False)
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    settle_process()
    return api


def main() -> None:
    """The server: `python -m benchmarks.api PORT [WORKERS]`, uvicorn with that many worker processes."""
    import uvicorn

    port, workers = int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1
    uvicorn.run(f"{SERVER}:make_app", factory=True, host="127.0.0.1", port=port, workers=workers,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
