"""`retento bench assist`: the support assist's served index at 100,000 past tickets.

- embedding: `--embedded` distinct generated tickets are embedded with the default embedder (e5-small, passage
  mode); its time per passage gives the embedding part of a full build, extrapolated to all tickets (embedding
  100,000 passages on this shared machine takes hours). The other tickets' vectors are the embedded ones with
  a small random perturbation, normalised: exact search costs the same whatever the vectors hold, and recall
  against brute force does not depend on them either.
- index build: every ticket stored (vectors in the database, as imports store them), then the served index built
  from the database as after a restart (read, stem, fill the matrix and the BM25 postings).
- queries: held-out new tickets, each embedded in query mode (the embed part) and searched top-5 by the served
  index (vector + BM25 fused by RRF: the search part), p50 / p95 of each and of the whole.
- the baseline: exact brute-force top-5 (one float32 matrix product over every vector) timed on the same queries.
- recall@5 of the served vector ranking against exact brute-force cosine (float64) in the same run, and the share
  of the fused top-5 that the cosine top-5 holds (they differ by design: BM25 votes too).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import insert

from benchmarks.targets import Target
from retento.assist import index, synthetic, text as words
from retento.assist.embed import E5Embedder
from retento.assist.models import Item
from retento.assist.runtime import Assist
from retento.bootstrap import bootstrap
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.migrate import migrate
from retento.sites.schemas import SiteCreate
from retento.sites.service import create_site

GOALS = {"search_p95_ms": 10.0, "whole_p95_ms": 50.0, "recall": 0.95}


@dataclass
class Result:
    backend: str
    tickets: int
    embedded: int
    embed_passage_ms: float
    embed_build_extrapolated_s: float
    store_s: float
    index_build_s: float
    queries: int
    embed_ms: tuple[float, float]
    search_ms: tuple[float, float]
    whole_ms: tuple[float, float]
    exact_ms: tuple[float, float]
    cpu_ms: dict[str, tuple[float, float]]  # process CPU time of each part (what the load does not inflate)
    recall_vector: float
    fused_overlap: float
    load_start: float
    load_end: float
    started: datetime


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def run(target: Target, *, tickets: int, embedded: int, queries: int, seed: int, progress: Any) -> Result:
    load_start, started = os.getloadavg()[0], datetime.now(timezone.utc)
    rng = np.random.default_rng(seed)
    app = bootstrap(Settings(database_url=target.url))
    try:
        migrate(app)
        with transaction(app.sessions) as s:
            site_id = create_site(s, data=SiteCreate(code="bench", name="Bench"), now=app.clock.now()).id
        emb = E5Embedder()
        rows = synthetic.bulk_tickets(tickets, seed=seed)
        sample = rows[:embedded]
        task = progress.add_task("embed (e5-small, passages)", total=len(sample))
        t0 = time.perf_counter()
        base = []
        for i in range(0, len(sample), 32):
            base.append(emb.passage([r["body"] for r in sample[i:i + 32]]))
            progress.advance(task, len(sample[i:i + 32]))
        embed_s = time.perf_counter() - t0
        base_m = np.vstack(base)
        vectors = np.empty((tickets, emb.dim), dtype=np.float32)
        vectors[:embedded] = base_m
        for start in range(embedded, tickets, 10_000):
            n = min(10_000, tickets - start)
            v = base_m[rng.integers(0, embedded, n)] + rng.normal(0, 0.02, (n, emb.dim)).astype(np.float32)
            vectors[start:start + n] = v / np.linalg.norm(v, axis=1, keepdims=True)
        task = progress.add_task("store", total=tickets)
        now = app.clock.now()
        t0 = time.perf_counter()
        for start in range(0, tickets, 2000):
            chunk = rows[start:start + 2000]
            with transaction(app.sessions) as s:
                s.execute(insert(Item), [
                    {"site_id": site_id, "kind": "ticket", "external_id": r["external_id"], "title": "",
                     "body": r["body"], "answer": r["answer"], "tags": r["tags"], "language": r["language"],
                     "meta": {}, "vector": vectors[start + i].tobytes(), "embedder": emb.name, "rev": 1,
                     "created_at": now, "updated_at": now} for i, r in enumerate(chunk)])
            progress.advance(task, len(chunk))
        store_s = time.perf_counter() - t0
        assist = Assist(emb)
        t0 = time.perf_counter()
        with transaction(app.sessions) as s:
            idx = assist.site(s, site_id)
        build_s = time.perf_counter() - t0
        coll = idx.collections["ticket"]
        asks = [synthetic._fill(t.asks[lang][-1], random.Random(seed + i))  # the held-out phrasings
                for i, t in enumerate(synthetic.TOPICS * (queries // len(synthetic.TOPICS) + 1))
                for lang in ("en", "ru")][:queries]
        exact_m = vectors.astype(np.float64)
        embed_t, search_t, whole_t, exact_t, recall, overlap = [], [], [], [], [], []
        cpu: dict[str, list[float]] = {"embed": [], "search": [], "exact": []}
        task = progress.add_task("queries", total=len(asks))
        for q in asks:
            t0, c0 = time.perf_counter(), time.process_time()
            with transaction(app.sessions) as s:
                assist.site(s, site_id)  # the served index's freshness check, as every request makes
            vec = emb.query([q])[0]
            t1, c1 = time.perf_counter(), time.process_time()
            hits = coll.search(vec, words.words(q), 5)
            t2, c2 = time.perf_counter(), time.process_time()
            cpu["embed"].append((c1 - c0) * 1000)
            cpu["search"].append((c2 - c1) * 1000)
            embed_t.append((t1 - t0) * 1000)
            search_t.append((t2 - t1) * 1000)
            whole_t.append((t2 - t0) * 1000)
            t3, c3 = time.perf_counter(), time.process_time()
            index.top(coll.matrix[:len(coll.ids)] @ vec, 5)  # the baseline: exact brute force over float32
            exact_t.append((time.perf_counter() - t3) * 1000)
            cpu["exact"].append((time.process_time() - c3) * 1000)
            exact = set(np.argsort(-(exact_m @ vec.astype(np.float64)))[:5].tolist())
            served = {r for r, _ in coll.vector_top(vec, 5)}
            recall.append(len(exact & served) / 5)
            overlap.append(len(exact & {coll.row_of[h.item_id] for h in hits}) / 5)
            progress.advance(task)
        return Result(target.version, tickets, embedded, embed_s / embedded * 1000, embed_s / embedded * tickets,
                      store_s, build_s, len(asks), (pct(embed_t, 50), pct(embed_t, 95)),
                      (pct(search_t, 50), pct(search_t, 95)), (pct(whole_t, 50), pct(whole_t, 95)),
                      (pct(exact_t, 50), pct(exact_t, 95)),
                      {k: (pct(v, 50), pct(v, 95)) for k, v in cpu.items()},
                      float(np.mean(recall)), float(np.mean(overlap)), load_start, os.getloadavg()[0], started)
    finally:
        app.close()


def markdown(r: Result, command: str) -> str:
    ok = {"search": r.search_ms[1] < GOALS["search_p95_ms"], "whole": r.whole_ms[1] < GOALS["whole_p95_ms"],
          "recall": r.recall_vector >= GOALS["recall"]}
    mark = {True: "met", False: "not met"}
    return "\n".join([
        f"Run {r.started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {r.backend}, load average {r.load_start:.1f} "
        f"at the start and {r.load_end:.1f} at the end: `retento {command}`",
        "",
        "| figure | value | goal |",
        "| --- | ---: | --- |",
        f"| tickets in the index | {r.tickets:,} | 100,000 |",
        f"| embedding a passage (e5-small, {r.embedded:,} embedded) | {r.embed_passage_ms:.1f} ms | |",
        f"| embedding all tickets (extrapolated) | {r.embed_build_extrapolated_s / 60:.1f} min | |",
        f"| storing the tickets with their vectors | {r.store_s:.1f} s | |",
        f"| building the served index from the database | {r.index_build_s:.1f} s | |",
        f"| query, embed part (+ freshness check) p50 / p95 | {r.embed_ms[0]:.1f} / {r.embed_ms[1]:.1f} ms | |",
        f"| query, search part (top-5, vector + BM25, RRF) p50 / p95 | {r.search_ms[0]:.1f} / {r.search_ms[1]:.1f} ms "
        f"| p95 < 10 ms: {mark[ok['search']]} |",
        f"| baseline: exact brute-force top-5 (float32 matrix product) p50 / p95 | {r.exact_ms[0]:.1f} / "
        f"{r.exact_ms[1]:.1f} ms | |",
        "| CPU time of the process (not inflated by waiting for a core) p50 / p95: embed; search; exact baseline "
        f"| {r.cpu_ms['embed'][0]:.1f} / {r.cpu_ms['embed'][1]:.1f}; {r.cpu_ms['search'][0]:.1f} / "
        f"{r.cpu_ms['search'][1]:.1f}; {r.cpu_ms['exact'][0]:.1f} / {r.cpu_ms['exact'][1]:.1f} ms | |",
        f"| whole query p50 / p95 ({r.queries} queries) | {r.whole_ms[0]:.1f} / {r.whole_ms[1]:.1f} ms "
        f"| p95 < 50 ms: {mark[ok['whole']]} |",
        f"| recall@5 of the served vector ranking vs exact brute force | {r.recall_vector:.3f} "
        f"| >= 0.95: {mark[ok['recall']]} |",
        f"| fused top-5 held in the exact cosine top-5 | {r.fused_overlap:.3f} | (differs by design) |",
    ])
