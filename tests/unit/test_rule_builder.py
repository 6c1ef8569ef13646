"""The segment rule builder's rows and the rule tree: rows make the tree the API takes; a stored flat tree comes
back as the same rows; a tree the rows cannot express (nesting, order categories) is left to JSON."""

from starlette.datastructures import MultiDict

from retento.console import rule_builder as b
from retento.segments.compiler import BUILT_IN
from retento.segments.rules import parse

TYPES = {t.name: t for t in BUILT_IN}


def _form(*rows: tuple[str, ...], match: str = "all") -> MultiDict:
    form = MultiDict([("match", match)])
    for row in rows:
        for name, value in zip(("kind", "key", "op", "value", "days"), row, strict=True):
            form.append(name, value)
    return form


def test_rows_make_the_api_tree_and_come_back() -> None:
    form = _form(("customer", "email", "is_set", "", ""), ("orders", "sum", "between", "100, 500.5", "90"),
                 ("tags", "none", "", "spam, test", ""), ("consent", "whatsapp", "ne", "", ""),
                 ("event", "custom", "eq", "cart_abandoned", "7"), ("rfm", "r", "", "4, 5", ""),
                 ("lifecycle", "", "", "sleeping", ""), ("customer", "birthday", "gte", "1990-01-01", ""),
                 ("", "", "", "", ""), match="any")
    match, rows, tree = b.from_form(form)
    assert tree == {"any": [
        {"customer": {"field": "email", "op": "is_set", "value": None}},
        {"orders": {"metric": "sum", "op": "between", "value": [100, 500.5], "within_days": 90}},
        {"tags": {"none": ["spam", "test"]}}, {"consent": {"channel": "whatsapp", "granted": False}},
        {"event": {"type": "custom", "did": True, "name": "cart_abandoned", "within_days": 7}},
        {"rfm": {"r": [4, 5]}}, {"lifecycle": {"state": ["sleeping"]}},
        {"customer": {"field": "birthday", "op": "gte", "value": "1990-01-01"}}]}
    parse(tree, TYPES)
    assert b.rows_of(tree, TYPES) == ("any", [r for r in rows if r.kind])


def test_trees_the_rows_cannot_express_are_json() -> None:
    assert b.rows_of({"all": [{"not": {"tags": {"any": ["x"]}}}]}, TYPES) is None
    assert b.rows_of({"orders": {"metric": "count", "op": "gte", "value": 1, "category": "shoes"}}, TYPES) is None
    assert b.rows_of({"tags": {"any": ["x"]}}, TYPES) == ("all", [b.Row("tags", "any", "", "x")])


def test_an_error_path_points_at_its_row() -> None:
    assert b.row_of_error("rules.all.2.orders.op") == 2
    assert b.row_of_error("rules") is None
