"""The grounding guard (pure): every link, documentation section, API method or event name and module named in
a suggestion must exist in the indexed material (documentation sections, past answers, tasks) or the site's list
of known identifiers. A sentence naming anything else is removed, and each invented item is counted."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

URL = re.compile(r"https?://[^\s<>()\"'`»]+")
MD_LINK = re.compile(r"\[([^\]\n]*)\]\(([^)\s]+)\)")
BACKTICK = re.compile(r"`([^`\n]+)`")
CALL = re.compile(r"\b([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+|[a-z]+[A-Z]\w*)\s*\(([^()\n]*)\)")
CAMEL = re.compile(r"\b[a-z]+[A-Z][A-Za-z0-9]*\b")
SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
DOTTED = re.compile(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\b")
API_PATH = re.compile(r"(?<![\w/])/api/[\w/{}.-]+")
ANCHOR = re.compile(r"(?<![\w/&])#([a-z0-9][\w-]*)", re.IGNORECASE)
SECTION = re.compile(r"(?:\bsections?|\bразделе?|\bраздела|\bглаве|\bглава)\s+[«\"“']([^»\"”'\n]{2,120})[»\"”']",
                     re.IGNORECASE)
MODULE = re.compile(r"(?:\bmodule|\bмодул[ьяеюи])\s+[«\"“'`]?([A-Za-zА-Яа-яЁё_][\w.-]*)|"
                    r"\b([A-Za-z_][\w.-]*)\s+module\b", re.IGNORECASE)
SENTENCE = re.compile(r"(?<=[.!?])\s+")
FILE_EXT = re.compile(r"\.(?:md|html?|txt|png|jpe?g|pdf|csv|json)$", re.IGNORECASE)
WORDISH_DOTTED = re.compile(r"^(?:e\.g|i\.e|etc|т\.д|т\.е|т\.п)$", re.IGNORECASE)


def _norm_call(name: str, args: str) -> str:
    return name + "(" + re.sub(r"\s+", "", args) + ")"


def _norm_url(url: str) -> str:
    return url.rstrip(".,;:!?").rstrip("/").lower()


@dataclass
class Grounding:
    """What exists: links (with and without their anchor), anchors, section headings, identifiers and the calls
    written out in the material (a call with arguments must appear as written)."""

    urls: set[str] = field(default_factory=set)
    anchors: set[str] = field(default_factory=set)
    sections: set[str] = field(default_factory=set)
    identifiers: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)

    def add_section(self, *, heading: str, anchor: str, url: str) -> None:
        self.sections.add(heading.strip().lower())
        if anchor:
            self.anchors.add(anchor.lower())
        if url:
            self.urls.add(_norm_url(url))
            self.urls.add(_norm_url(url.split("#", 1)[0]))

    def add_identifiers(self, names: list[str]) -> None:
        for name in names:
            name = name.strip()
            if name:
                self.identifiers.add(name.lower())
                self.identifiers.update(p.lower() for p in name.split(".") if p)

    def add_text(self, text: str) -> None:
        """Everything a text names counts as known: its links, code spans, calls and identifiers."""
        for m in URL.finditer(text):
            self.urls.add(_norm_url(m.group(0)))
        for m in MD_LINK.finditer(text):
            self.urls.add(_norm_url(m.group(2)))
        for m in CALL.finditer(text):
            self.calls.add(_norm_call(m.group(1), m.group(2)).lower())
            self.add_identifiers([m.group(1)])
        spans = [m.group(1) for m in BACKTICK.finditer(text)]
        self.add_identifiers([s for s in spans if "(" not in s])
        for pattern in (CAMEL, SNAKE, DOTTED, API_PATH):
            self.add_identifiers([m.group(0) for m in pattern.finditer(text)])
        for m in MODULE.finditer(text):
            self.add_identifiers([m.group(1) or m.group(2)])

    def knows_url(self, url: str) -> bool:
        u = _norm_url(url)
        if u.startswith("#"):
            return u[1:] in self.anchors
        return u in self.urls

    def knows(self, name: str) -> bool:
        return name.strip().lower() in self.identifiers


@dataclass(frozen=True)
class Invented:
    kind: str  # link section anchor identifier call module
    text: str


@dataclass(frozen=True)
class Guarded:
    text: str
    removed: list[Invented]


def invented(sentence: str, g: Grounding) -> list[Invented]:
    """What a sentence names that the grounding does not know."""
    out: list[Invented] = []
    rest = sentence
    for m in MD_LINK.finditer(sentence):
        if not g.knows_url(m.group(2)):
            out.append(Invented("link", m.group(2)))
    rest = MD_LINK.sub(lambda m: f" {m.group(1)} ", rest)
    for m in URL.finditer(rest):
        if not g.knows_url(m.group(0)):
            out.append(Invented("link", m.group(0).rstrip(".,;:!?")))
    rest = URL.sub(" ", rest)
    for m in SECTION.finditer(rest):
        if m.group(1).strip().lower() not in g.sections:
            out.append(Invented("section", m.group(1)))
    for m in ANCHOR.finditer(rest):
        if m.group(1).lower() not in g.anchors:
            out.append(Invented("anchor", "#" + m.group(1)))
    for m in CALL.finditer(rest):
        args = m.group(2).strip()
        call = _norm_call(m.group(1), m.group(2)).lower()
        if args and args not in ("...", "…") and call not in g.calls:
            out.append(Invented("call", m.group(0)))
        elif not g.knows(m.group(1)):
            out.append(Invented("identifier", m.group(1)))
    rest = CALL.sub(" ", rest)
    for m in API_PATH.finditer(rest):
        if not g.knows(m.group(0)):
            out.append(Invented("identifier", m.group(0)))
    rest = API_PATH.sub(" ", rest)
    seen: set[str] = set()
    names = [m.group(1) for m in BACKTICK.finditer(rest)]
    plain = BACKTICK.sub(" ", rest)
    names += [m.group(0) for p in (DOTTED, CAMEL, SNAKE) for m in p.finditer(plain)]
    for name in names:
        key = name.strip().lower()
        if any(key in other.split(".") for other in seen):
            continue  # a part of a dotted name already checked
        if not key or key in seen or WORDISH_DOTTED.match(key) or FILE_EXT.search(key) or re.fullmatch(r"[\d.]+", key):
            continue
        seen.add(key)
        if not g.knows(name):
            out.append(Invented("identifier", name))
    for m in MODULE.finditer(plain):
        name = m.group(1) or m.group(2)
        if name.lower() not in seen and not g.knows(name) and name.lower() not in ("the", "this", "a", "that"):
            out.append(Invented("module", name))
    return out


def guard(text: str, g: Grounding) -> Guarded:
    """`text` without the sentences that name something unknown, and what was removed."""
    kept_lines: list[str] = []
    removed: list[Invented] = []
    for line in text.split("\n"):
        kept: list[str] = []
        for sentence in SENTENCE.split(line):
            bad = invented(sentence, g)
            if bad:
                removed.extend(bad)
            else:
                kept.append(sentence)
        if kept or not line.strip():
            kept_lines.append(" ".join(kept))
    return Guarded(re.sub(r"\n{3,}", "\n\n", "\n".join(kept_lines)).strip(), removed)
