"""A suggested answer composed from the closest past answers and documentation sections (pure; no language
model): the best past answer, quoted with its ticket, and links to the closest sections; in the ticket's language."""

from __future__ import annotations

from dataclasses import dataclass

MIN_TICKET = 0.83  # cosine of e5-small below which a past ticket is not offered as an answer
MIN_DOC = 0.80
DOC_SPREAD = 0.005  # a further section is linked only this close to the best one (e5-small's cosines crowd)

LABELS = {
    "en": {"see": "See also:", "none": "No close past answer or documentation section was found."},
    "ru": {"see": "См. также:", "none": "Близких прошлых ответов и разделов документации не найдено."},
}


@dataclass(frozen=True)
class Source:
    kind: str  # ticket doc
    external_id: str
    title: str
    url: str | None
    score: float

    def as_dict(self) -> dict:
        return {"kind": self.kind, "external_id": self.external_id, "title": self.title, "url": self.url,
                "score": round(self.score, 4)}


@dataclass(frozen=True)
class Candidate:
    source: Source
    text: str  # a ticket's answer, a section's text


def compose(language: str, tickets: list[Candidate], docs: list[Candidate], *, min_ticket: float = MIN_TICKET,
            min_doc: float = MIN_DOC, links: int = 2) -> tuple[str, list[Source]]:
    """The draft and its sources: the closest past ticket's answer above `min_ticket`, then up to `links`
    sections above `min_doc` as Markdown links."""
    labels = LABELS.get(language, LABELS["en"])
    parts: list[str] = []
    sources: list[Source] = []
    answered = [c for c in tickets if c.text.strip() and c.source.score >= min_ticket]
    if answered:
        best = answered[0]
        parts.append(best.text.strip())
        sources.append(best.source)
    close_docs = [c for c in docs if c.source.score >= min_doc and c.source.url][:links]
    close_docs = [c for c in close_docs if c.source.score >= close_docs[0].source.score - DOC_SPREAD]
    if close_docs:
        lines = [f"- [{c.source.title}]({c.source.url})" for c in close_docs]
        parts.append(labels["see"] + "\n" + "\n".join(lines))
        sources.extend(c.source for c in close_docs)
    return ("\n\n".join(parts) if parts else labels["none"]), sources
