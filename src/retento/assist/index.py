"""The in-process search index of one site's items of one kind (tickets, doc sections or tasks): a float32 matrix
of normalised vectors and an inverted index scored with BM25, both updated in place when an item is added or
changed, fused by reciprocal rank (RRF). Pure: no database.

Up to `REDUCE_AT` items the vectors are searched exactly (one matrix product). From then on a product with the
vectors projected on their `REDUCED_DIM` main directions (an SVD of a sample, taken once) picks `PREFILTER`
candidates, which the full vectors then rank exactly: the matrix read per query is a quarter as large, and reading
it is what a query costs (150 MB at 100,000 × 384). `retento bench assist` measures its recall against exact
brute force."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

K1, B = 1.2, 0.75
RRF_K = 60
CANDIDATES = 50  # how deep each ranking is read before fusing
REDUCE_AT = 20_000
REDUCED_DIM = 96
PREFILTER = 1000  # candidates the reduced vectors pick (256 gave recall@5 0.994, 1,000 gave 1.000 for 0.2 ms)


@dataclass(frozen=True)
class Hit:
    item_id: int
    score: float  # the fused RRF score
    cosine: float  # of the query and the item's vector
    vector_rank: int | None  # 1-based places in each ranking (None: not among its candidates)
    lexical_rank: int | None


def top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, highest first."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


class Collection:
    """Vectors and words of items, by row; `upsert` replaces an item's row in place, `remove` empties it."""

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self.matrix = np.zeros((capacity, dim), dtype=np.float32)
        self.alive = np.zeros(capacity, dtype=bool)
        self.lengths = np.zeros(capacity, dtype=np.float32)
        self.ids: list[int] = []
        self.row_of: dict[int, int] = {}
        self.terms: list[Counter[str]] = []
        self.postings: dict[str, dict[int, int]] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.count = 0  # live items
        self._total_len = 0.0
        self.dead = 0
        self.basis: np.ndarray | None = None  # (dim, REDUCED_DIM) once there are REDUCE_AT items
        self.reduced = np.zeros((capacity, 0), dtype=np.float32)

    def __len__(self) -> int:
        return self.count

    def _grow(self, need: int) -> None:
        cap = self.matrix.shape[0]
        if need <= cap:
            return
        new = max(need, cap * 2)
        for name in ("matrix", "alive", "lengths", "reduced"):
            old = getattr(self, name)
            grown = np.zeros((new, *old.shape[1:]), dtype=old.dtype)
            grown[:cap] = old
            setattr(self, name, grown)

    def upsert_many(self, items: list[tuple[int, np.ndarray, list[str]]]) -> None:
        """(item id, normalised vector, stemmed words) of each item."""
        new = sum(1 for item_id, _, _ in items if item_id not in self.row_of)
        self._grow(len(self.ids) + new)
        for item_id, vector, words in items:
            row = self.row_of.get(item_id)
            if row is None:
                row = len(self.ids)
                self.ids.append(item_id)
                self.row_of[item_id] = row
                self.terms.append(Counter())
            else:
                self._unindex(row)
            self.matrix[row] = vector
            self.alive[row] = True
            counts = Counter(words)
            self.terms[row] = counts
            for term, tf in counts.items():
                self.postings.setdefault(term, {})[row] = tf
                self._arrays.pop(term, None)
            self.lengths[row] = len(words)
            self._total_len += len(words)
            self.count += 1
        if self.basis is None and self.count >= REDUCE_AT:
            self._reduce()
        elif self.basis is not None:
            rows = [self.row_of[item_id] for item_id, _, _ in items]
            self.reduced[rows] = self.matrix[rows] @ self.basis

    def _reduce(self) -> None:
        """The main directions of the vectors (uncentred SVD of up to 20,000 of them: dot products are kept)."""
        n = len(self.ids)
        sample = self.matrix[:n][np.linspace(0, n - 1, min(n, 20_000)).astype(np.int64)]
        _, _, vt = np.linalg.svd(sample, full_matrices=False)
        self.basis = np.ascontiguousarray(vt[:REDUCED_DIM].T.astype(np.float32))
        self.reduced = np.zeros((self.matrix.shape[0], REDUCED_DIM), dtype=np.float32)
        self.reduced[:n] = self.matrix[:n] @ self.basis

    def remove(self, item_id: int) -> None:
        row = self.row_of.get(item_id)
        if row is not None and self.alive[row]:
            self._unindex(row)
            self.matrix[row] = 0
            self.dead += 1

    def _unindex(self, row: int) -> None:
        if not self.alive[row]:
            self.dead -= 1
            return
        for term in self.terms[row]:
            posting = self.postings.get(term)
            if posting is not None:
                posting.pop(row, None)
                if not posting:
                    del self.postings[term]
            self._arrays.pop(term, None)
        self._total_len -= float(self.lengths[row])
        self.terms[row] = Counter()
        self.alive[row] = False
        self.count -= 1

    # -- rankings ---------------------------------------------------------------------------------------------
    def cosines(self, query: np.ndarray) -> np.ndarray:
        n = len(self.ids)
        scores = self.matrix[:n] @ query.astype(np.float32, copy=False)
        if self.dead:
            scores[~self.alive[:n]] = -np.inf
        return scores

    def vector_top(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(row, cosine) of the k closest live items: exact, or exact among the reduced vectors' candidates."""
        q = query.astype(np.float32, copy=False)
        n = len(self.ids)
        k = min(k, self.count)
        if self.basis is None or k > PREFILTER:
            scores = self.cosines(q)
            return [(int(r), float(scores[r])) for r in top(scores, k)]
        approx = self.reduced[:n] @ (q @ self.basis)
        if self.dead:
            approx[~self.alive[:n]] = -np.inf
        cand = top(approx, min(PREFILTER, self.count))
        exact = self.matrix[cand] @ q
        order = np.argsort(-exact, kind="stable")[:k]
        return [(int(cand[i]), float(exact[i])) for i in order]

    def _posting(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        cached = self._arrays.get(term)
        if cached is None:
            posting = self.postings.get(term)
            if not posting:
                return None
            cached = (np.fromiter(posting.keys(), dtype=np.int64, count=len(posting)),
                      np.fromiter(posting.values(), dtype=np.float32, count=len(posting)))
            self._arrays[term] = cached
        return cached

    def bm25(self, words: list[str]) -> np.ndarray | None:
        """BM25 score of every row (0 where none of the words is), or None when no row holds any."""
        if not self.count:
            return None
        avg = self._total_len / self.count or 1.0
        acc: np.ndarray | None = None
        for term in set(words):
            posting = self._posting(term)
            if posting is None:
                continue
            rows, tfs = posting
            idf = math.log(1 + (self.count - rows.size + 0.5) / (rows.size + 0.5))
            lens = self.lengths[rows]
            part = idf * tfs * (K1 + 1) / (tfs + K1 * (1 - B + B * lens / avg))
            if acc is None:
                acc = np.zeros(len(self.ids), dtype=np.float32)
            acc[rows] += part
        return acc

    def lexical_top(self, words: list[str], k: int) -> list[tuple[int, float]]:
        acc = self.bm25(words)
        if acc is None:
            return []
        k = min(k, int(np.count_nonzero(acc)))
        return [(int(r), float(acc[r])) for r in top(acc, k)]

    def search(self, query: np.ndarray, words: list[str], k: int, *, lexical: bool = True) -> list[Hit]:
        """The k best items by RRF of the vector and BM25 rankings (each read `CANDIDATES` deep)."""
        depth = max(k, CANDIDATES)
        vec = [r for r, _ in self.vector_top(query, depth)] if self.count else []
        lex = [r for r, _ in self.lexical_top(words, depth)] if lexical else []
        q = query.astype(np.float32, copy=False)
        return fuse(vec, lex, lambda rows: self.matrix[rows] @ q, self.ids, k)


def fuse(vec: list[int], lex: list[int], cosines: Callable[[list[int]], np.ndarray], ids: list[int],
         k: int) -> list[Hit]:
    """Reciprocal rank fusion of two rankings of rows: sum of 1 / (RRF_K + rank)."""
    fused: dict[int, float] = {}
    vrank = {r: i + 1 for i, r in enumerate(vec)}
    lrank = {r: i + 1 for i, r in enumerate(lex)}
    for ranks in (vrank, lrank):
        for r, rank in ranks.items():
            fused[r] = fused.get(r, 0.0) + 1.0 / (RRF_K + rank)
    best = sorted(fused.items(), key=lambda kv: (-kv[1], vrank.get(kv[0], 10**9)))[:k]
    cos = cosines([r for r, _ in best]) if best else []
    return [Hit(ids[r], s, float(c), vrank.get(r), lrank.get(r)) for (r, s), c in zip(best, cos, strict=True)]
