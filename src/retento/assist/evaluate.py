"""Evaluation on a labelled set (metrics pure): recall@5 and MRR of similar tickets, recall@5 of documentation
links, task accuracy, the share of suggestions matching the reference answer, and invented items (what a
suggestion shown to an operator names that the material does not: must be 0; what the guard removed is reported
beside it)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from retento.assist import text as words
from retento.assist.guard import Grounding, invented

MATCH = 0.6  # share of the reference answer's words a suggestion must hold to match it


def recall_at(ranked: Sequence[str], relevant: set[str], k: int = 5) -> float:
    """Share of the relevant items (at most k of them can be found) among the first k."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & relevant) / min(k, len(relevant))


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    for i, r in enumerate(ranked, 1):
        if r in relevant:
            return 1.0 / i
    return 0.0


def matches(suggestion: str, reference: str, share: float = MATCH) -> bool:
    """The suggestion holds at least `share` of the reference answer's (stemmed) words."""
    ref = set(words.words(reference))
    if not ref:
        return False
    return len(ref & set(words.words(suggestion))) / len(ref) >= share


def count_invented(text: str, grounding: Grounding) -> int:
    return sum(len(invented(s, grounding)) for line in text.split("\n") for s in re.split(r"(?<=[.!?])\s+", line))


def mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def run(queries: list[dict[str, Any]], ask: Callable[[str], dict[str, Any]], grounding: Grounding) -> dict[str, Any]:
    """`ask(text)` -> {similar: [ids], docs: [ids], tasks: [ids], answer: str, removed: int} for each query."""
    rec, rr, doc_rec, task_hit, matched, inv, removed = [], [], [], [], [], 0, 0
    for q in queries:
        got = ask(q["text"])
        relevant = set(q.get("relevant_tickets") or [])
        if relevant:
            rec.append(recall_at(got["similar"], relevant))
            rr.append(reciprocal_rank(got["similar"], relevant))
        if q.get("relevant_docs"):
            doc_rec.append(recall_at(got["docs"], set(q["relevant_docs"])))
        if q.get("relevant_task"):
            task_hit.append(1.0 if got["tasks"][:1] == [q["relevant_task"]] else 0.0)
        if q.get("reference_answer"):
            matched.append(1.0 if matches(got["answer"], q["reference_answer"]) else 0.0)
        inv += count_invented(got["answer"], grounding)
        removed += got.get("removed", 0)
    return {"queries": len(queries), "recall_at_5": mean(rec), "mrr": mean(rr), "doc_recall_at_5": mean(doc_rec),
            "task_accuracy": mean(task_hit), "match_share": mean(matched), "invented": inv, "removed": removed}
