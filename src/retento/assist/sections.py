"""Documentation files into sections (pure): every heading of a Markdown or HTML page with its anchor (an explicit
`{#id}` / `id="..."`, else the heading's slug as GitHub makes it) and its URL (the page's URL + `#anchor`), the
section's text being what follows the heading up to the next one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
EXPLICIT = re.compile(r"\s*\{#([\w-]+)\}\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class Section:
    page: str  # the file's path
    heading: str
    level: int
    anchor: str
    url: str
    text: str

    @property
    def external_id(self) -> str:
        return f"{self.page}#{self.anchor}"


def slug(heading: str) -> str:
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return re.sub(r" ", "-", s)


def _unique(anchor: str, seen: dict[str, int]) -> str:
    n = seen.get(anchor, 0)
    seen[anchor] = n + 1
    return anchor if n == 0 else f"{anchor}-{n}"


def page_url(path: str, base_url: str) -> str:
    """`guide/orders.md` under `https://docs.example/` -> `https://docs.example/guide/orders` (.html kept)."""
    rel = re.sub(r"\.(md|markdown)$", "", path.lstrip("/"), flags=re.IGNORECASE)
    return f"{base_url.rstrip('/')}/{rel}" if base_url else f"/{rel}"


def markdown(path: str, content: str, url: str) -> list[Section]:
    out: list[Section] = []
    seen: dict[str, int] = {}
    heading: tuple[int, str, str] | None = None
    body: list[str] = []
    fenced = False

    def close() -> None:
        if heading is not None:
            level, title, anchor = heading
            out.append(Section(path, title, level, anchor, f"{url}#{anchor}", "\n".join(body).strip()))

    for line in content.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        m = None if fenced else MD_HEADING.match(line)
        if m is None:
            body.append(line)
            continue
        close()
        title = m.group(2)
        explicit = EXPLICIT.search(title)
        if explicit:
            title = title[:explicit.start()].strip()
        anchor = explicit.group(1) if explicit else _unique(slug(title), seen)
        heading, body = (len(m.group(1)), title, anchor), []
    close()
    if not out and content.strip():  # a page without headings is one section
        out.append(Section(path, path, 1, "", url, content.strip()))
    return out


class _Html(HTMLParser):
    SKIP = {"script", "style", "nav", "footer"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[tuple[int, str, str | None, list[str]]] = []  # level, heading, id, text
        self.level = 0
        self.heading: list[str] = []
        self.hid: str | None = None
        self.skip = 0
        self.body: list[str] = []
        self.title: list[str] = []
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip += 1
        elif tag == "title":
            self.in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self.level, self.heading, self.hid = int(tag[1]), [], dict(attrs).get("id")
        elif tag in ("p", "li", "br", "pre", "tr", "div"):
            self.body.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "title":
            self.in_title = False
        elif re.fullmatch(r"h[1-6]", tag) and self.level:
            self.parts.append((self.level, " ".join("".join(self.heading).split()), self.hid, self.body))
            self.body, self.level = [], 0

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.in_title:
            self.title.append(data)
        elif self.level:
            self.heading.append(data)
        else:
            self.body.append(data)


def html(path: str, content: str, url: str) -> list[Section]:
    parser = _Html()
    parser.feed(content)
    parser.close()
    seen: dict[str, int] = {}
    out = []
    for i, (level, title, hid, _) in enumerate(parser.parts):
        body = parser.parts[i + 1][3] if i + 1 < len(parser.parts) else parser.body
        text = re.sub(r"[ \t]+", " ", re.sub(r"\n\s*\n+", "\n", "".join(body))).strip()
        anchor = hid or _unique(slug(title), seen)
        out.append(Section(path, title, level, anchor, f"{url}#{anchor}", text))
    if not out and "".join(parser.body).strip():
        out.append(Section(path, "".join(parser.title).strip() or path, 1, "", url,
                           " ".join("".join(parser.body).split())))
    return out


def parse(path: str, content: str, *, base_url: str = "", url: str | None = None) -> list[Section]:
    """The sections of one file; HTML by its extension (.html, .htm) or content, else Markdown."""
    page = url or page_url(path, base_url)
    is_html = path.lower().endswith((".html", ".htm")) or content.lstrip().lower().startswith(("<!doctype", "<html"))
    return html(path, content, page) if is_html else markdown(path, content, page)
