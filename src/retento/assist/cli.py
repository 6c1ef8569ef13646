"""`retento assist ...`: import tickets, documentation and tasks; ask for similar tickets, a suggested answer,
documentation links, matching tasks, near-duplicates, a catalogue's industry; the usage report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from retento.assist import imports, industry as industries, service, synthetic
from retento.assist.schemas import DocFileIn, DocsIn, IdentifiersIn, Product, TaskIn, TicketIn, records
from retento.cmdline import Col, Format, FormatOption, Rows, emit, fail, open_app, run_service
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.sites.service import get_site

app = typer.Typer(help="Support assist: similar tickets, answers, doc links. / Подсказки поддержке.",
                  no_args_is_help=True)
import_app = typer.Typer(help="Import tickets, docs, tasks, identifiers. / Загрузка материалов.", no_args_is_help=True)
app.add_typer(import_app, name="import")
console = Console()
Site = Annotated[str, typer.Option("--site", help="Site code / код магазина")]
SiteOpt = Annotated[str | None, typer.Option("--site", help="Site code / код магазина")]
Text = Annotated[str, typer.Argument(help="The ticket's text / текст обращения")]
K = Annotated[int, typer.Option("--k", min=1, max=50)]
DOC_SUFFIXES = (".md", ".markdown", ".html", ".htm")


def read_records(path: Path) -> list[dict[str, Any]]:
    """A JSON array or JSON Lines file of objects."""
    try:
        return records(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}")
    except ValueError as exc:
        fail(f"{path}: {exc}")


def _parse(model: Any, records: list[dict[str, Any]], path: Path) -> list[Any]:
    out = []
    for n, r in enumerate(records, 1):
        try:
            out.append(model.model_validate(r))
        except ValidationError as exc:
            first = DomainError.from_pydantic(exc).errors[0]
            fail(f"{path}: record {n}: {first.field}: {first.reason}")
    return out


def _counts(what: str, c: dict[str, int]) -> None:
    extra = f", {c['sections']} sections" if "sections" in c else ""
    console.print(f"{what}: {c['created']} created, {c['updated']} updated, {c['unchanged']} unchanged{extra}")


@import_app.command("tickets")
def import_tickets(file: Annotated[Path, typer.Argument(help="JSON array or JSON Lines")], site: Site) -> None:
    """Past tickets: external_id, subject, body, answer, resolution, tags, language. / Прошлые обращения."""
    items = _parse(TicketIn, read_records(file), file)
    a = open_app()
    with transaction(a.sessions) as s:
        c = run_service(lambda: service.import_tickets(s, site=site, items=items, embedder=a.assist.embedder,
                                                       now=a.clock.now()))
    _counts("tickets", c)


@import_app.command("tasks")
def import_tasks(file: Annotated[Path, typer.Argument(help="JSON array or JSON Lines")], site: Site) -> None:
    """Development tasks: external_id, title, description, status, url. / Задачи разработки."""
    items = _parse(TaskIn, read_records(file), file)
    a = open_app()
    with transaction(a.sessions) as s:
        c = run_service(lambda: service.import_tasks(s, site=site, items=items, embedder=a.assist.embedder,
                                                     now=a.clock.now()))
    _counts("tasks", c)


def doc_files(path: Path) -> list[DocFileIn]:
    """A Markdown / HTML file, or every such file under a folder (paths relative to it)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DOC_SUFFIXES)
        root = path
    elif path.is_file():
        files, root = [path], path.parent
    else:
        fail(f"{path}: no such file or folder")
    if not files:
        fail(f"{path}: no .md or .html files")
    return [DocFileIn(path=p.relative_to(root).as_posix(), content=p.read_text(encoding="utf-8")) for p in files]


@import_app.command("docs")
def import_docs(path: Annotated[Path, typer.Argument(help="A Markdown or HTML file, or a folder of them")],
                site: Site, base_url: Annotated[str, typer.Option("--base-url", help="URL of the docs' root")] = ""
                ) -> None:
    """Documentation: every heading a section with its anchor and URL. / Документация по разделам."""
    try:
        data = DocsIn(base_url=base_url, files=doc_files(path))
    except ValidationError as exc:
        first = DomainError.from_pydantic(exc).errors[0]
        fail(f"{first.field}: {first.reason}")
    a = open_app()
    with transaction(a.sessions) as s:
        c = run_service(lambda: service.import_docs(s, site=site, data=data, embedder=a.assist.embedder,
                                                    now=a.clock.now()))
    _counts("docs", c)


@import_app.command("identifiers")
def import_identifiers(file: Annotated[Path, typer.Argument(help="One name a line")], site: Site) -> None:
    """Names (API methods, events, modules) the guard accepts. / Известные идентификаторы."""
    try:
        names = [n.strip() for n in file.read_text(encoding="utf-8").splitlines() if n.strip()]
    except OSError as exc:
        fail(f"{file}: {exc.strerror or exc}")
    if not names:
        fail(f"{file}: no names")
    a = open_app()
    with transaction(a.sessions) as s:
        c = run_service(lambda: service.import_identifiers(s, site=site, data=IdentifiersIn(names=names),
                                                           now=a.clock.now()))
    _counts("identifiers", c)


def _ask(fn: Any) -> Any:
    a = open_app()
    with transaction(a.sessions) as s:
        return run_service(lambda: fn(s, a.assist))


@app.command("similar")
def similar(text: Text, site: Site, k: K = 5, fmt: FormatOption = Format.table) -> None:
    """The closest past tickets with their answers. / Похожие обращения."""
    rows = _ask(lambda s, x: service.similar(s, x, site=site, text=text, k=k))
    emit(fmt, Rows("similar", [Col("external_id", "ticket"), Col("score", kind="number"), Col("subject"),
                               Col("answer", empty="-")], rows), data=rows)


@app.command("suggest")
def suggest(text: Text, site: Site, k: K = 5) -> None:
    """A suggested answer with its sources. / Предлагаемый ответ с источниками."""
    out = _ask(lambda s, x: service.suggest(s, x, site=site, text=text, k=k))
    console.print(out["answer"], markup=False, highlight=False)
    console.print("")
    for src in out["sources"]:
        console.print(f"- {src['kind']} {src['external_id']} ({src['score']:.3f}) {src['url'] or ''}", markup=False)
    if out["invented"]:
        console.print(f"removed by the guard: {out['invented']}")


@app.command("links")
def links(text: Text, site: Site, k: K = 5, fmt: FormatOption = Format.table) -> None:
    """Documentation sections for a text. / Разделы документации."""
    rows = _ask(lambda s, x: service.doc_links(s, x, site=site, text=text, k=k))
    emit(fmt, Rows("links", [Col("heading"), Col("url"), Col("score", kind="number")], rows), data=rows)


@app.command("tasks")
def tasks(text: Text, site: Site, k: K = 5, fmt: FormatOption = Format.table) -> None:
    """Development tasks matching a request. / Подходящие задачи разработки."""
    rows = _ask(lambda s, x: service.match_tasks(s, x, site=site, text=text, k=k))
    emit(fmt, Rows("tasks", [Col("external_id", "task"), Col("title"), Col("status", empty="-"),
                             Col("score", kind="number"), Col("url", empty="-")], rows), data=rows)


@app.command("duplicates")
def duplicates(site: Site, threshold: Annotated[float, typer.Option(min=0.5, max=1.0)] = 0.95,
               limit: Annotated[int, typer.Option(min=1, max=500)] = 50, fmt: FormatOption = Format.table) -> None:
    """Groups of near-duplicate past tickets. / Группы почти одинаковых обращений."""
    found = _ask(lambda s, x: service.duplicates(s, x, site=site, threshold=threshold, limit=limit))
    rows = [{"group": n, "size": g["size"], "tickets": ", ".join(t["external_id"] for t in g["tickets"])}
            for n, g in enumerate(found, 1)]
    emit(fmt, Rows("duplicates", [Col("group", kind="int"), Col("size", kind="int"), Col("tickets")], rows),
         data=found)


@app.command("industry")
def industry(file: Annotated[Path, typer.Argument(help="Products: JSON array / JSON Lines of {name, category}")],
             fmt: FormatOption = Format.table) -> None:
    """A shop's industry from its catalogue. / Отрасль магазина по каталогу."""
    products = _parse(Product, read_records(file), file)
    if not products:
        fail(f"{file}: no products")
    found = industries.classify([(p.name, p.category) for p in products])
    row = {"industry": found.industry, "confidence": found.confidence, "products": found.products}
    emit(fmt, Rows("industry", [Col("industry"), Col("confidence", kind="percent"), Col("products", kind="int")],
                   [row], stacked=True), data={**row, "votes": found.votes})


@app.command("usage")
def usage(site: SiteOpt = None, fmt: FormatOption = Format.table) -> None:
    """Usage of suggestions and first response with / without them. / Использование подсказок."""
    a = open_app()
    with transaction(a.sessions) as s:
        site_ids = [run_service(lambda: get_site(s, site)).id] if site else None
        data = service.usage(s, site_ids=site_ids)
    row = {"marks": data["marks"], "shown": data["shown"], "usage_share": data["usage_share"],
           "with_median": data["first_response_with"]["median_seconds"],
           "without_median": data["first_response_without"]["median_seconds"],
           "change": data["first_response_change"]}
    emit(fmt, Rows("usage", [Col("marks", kind="int"), Col("shown", "suggestions shown", kind="int"),
                             Col("usage_share", "used or edited", kind="percent", empty="-"),
                             Col("with_median", "first response with, median s", kind="number", empty="-"),
                             Col("without_median", "first response without, median s", kind="number", empty="-"),
                             Col("change", "first response change (mean)", kind="percent", empty="-")],
                   [row], stacked=True), data=data)


@app.command("generate")
def generate(folder: Annotated[Path, typer.Argument(help="Where to write the set")],
             per_topic: Annotated[int, typer.Option(min=1, max=10_000)] = 6,
             queries: Annotated[int, typer.Option("--queries", min=1, max=1000, help="New tickets per topic")] = 2,
             seed: Annotated[int, typer.Option()] = 7) -> None:
    """A synthetic labelled RU + EN set: docs/, tickets, tasks, queries, catalogues. / Синтетический набор."""
    data = synthetic.generate(per_topic=per_topic, queries_per_topic=queries, seed=seed)
    (folder / "docs").mkdir(parents=True, exist_ok=True)
    for d in data.docs:
        path = folder / "docs" / d["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(d["content"], encoding="utf-8")
    for name, rows in (("tickets", data.tickets), ("tasks", data.tasks), ("queries", data.queries),
                       ("catalogues", data.catalogues)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                              encoding="utf-8")
    console.print(f"{folder}: {len(data.docs)} doc pages, {len(data.tickets)} tickets, {len(data.tasks)} tasks, "
                  f"{len(data.queries)} labelled queries, {len(data.catalogues)} catalogues "
                  f"(import docs with --base-url {synthetic.DOCS_URL})")


@app.command("eval")
def evaluate(queries: Annotated[Path, typer.Argument(help="Labelled queries (JSON Lines): text, relevant_tickets, "
                                                          "relevant_docs, relevant_task, reference_answer")],
             site: Site,
             catalogues: Annotated[Path | None, typer.Option(help="Catalogues with their industry")] = None,
             fmt: FormatOption = Format.table) -> None:
    """Recall@5, MRR, answer match share, invented items (must be 0). / Оценка качества подсказок."""
    rows = read_records(queries)
    for n, q in enumerate(rows, 1):
        if not isinstance(q.get("text"), str) or not q["text"].strip():
            fail(f"{queries}: record {n}: text: required")
    a = open_app()
    with transaction(a.sessions) as s:
        data = run_service(lambda: service.evaluate(s, a.assist, site=site, queries=rows))
        imports.keep_evaluation(s, site_id=get_site(s, site).id, file=queries.name, figures=data, now=a.clock.now())
    if catalogues is not None:
        shops = read_records(catalogues)
        right = sum(industries.classify([(p["name"], p.get("category")) for p in c.get("products", [])]).industry
                    == c.get("industry") for c in shops)
        data["industry_accuracy"] = round(right / len(shops), 4) if shops else None
        data["catalogues"] = len(shops)
    cols = [Col("queries", kind="int"), Col("recall_at_5", "recall@5", kind="number"), Col("mrr", "MRR", kind="number"),
            Col("doc_recall_at_5", "doc links recall@5", kind="number"),
            Col("task_accuracy", "task matched first", kind="percent"),
            Col("match_share", "suggestion matches reference", kind="percent"),
            Col("invented", "invented items shown", kind="int"), Col("removed", "removed by the guard", kind="int")]
    if catalogues is not None:
        cols.append(Col("industry_accuracy", "industry accuracy", kind="percent", empty="-"))
    emit(fmt, Rows("eval", cols, [data], stacked=True), data=data)
    if data["invented"]:
        raise typer.Exit(2)
