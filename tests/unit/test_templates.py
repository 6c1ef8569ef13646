"""The one template language (core.templates): the sandbox, None as empty, legacy `{order.x}` placeholders."""

import pytest

from retento.core import templates
from retento.core.errors import DomainError


def test_legacy_placeholders_become_sandbox_expressions_and_nothing_else_changes():
    assert templates.from_legacy("Order {order.number} for {customer.email}") == (
        "Order {{ order.number }} for {{ customer.email }}")
    assert templates.from_legacy("{trigger.name}/{event.id}") == "{{ trigger.name }}/{{ event.id }}"
    for unchanged in ("{{ order.number }}", "{{order.number}}", "{site.name}", "{order}", "{order.}",
                      "{% if order.number %}x{% endif %}", "{ order.number }", "plain text"):
        assert templates.from_legacy(unchanged) == unchanged
    mixed = "{order.number}: {{ customer.first_name | upper }}"
    assert templates.from_legacy(mixed) == "{{ order.number }}: {{ customer.first_name | upper }}"


def test_lenient_rendering_leaves_missing_and_none_empty_strict_names_the_field():
    tpl = templates.compile_template("[{{ order.number }}|{{ customer.email }}|{{ event.id }}]", field="title")
    assert templates.render(tpl, {"order": {"number": None}, "customer": {}}, field="title") == "[||]"
    strict = templates.compile_template("{{ customer.frist_name }}", field="subject", strict=True)
    with pytest.raises(DomainError) as exc:
        templates.render(strict, {"customer": {"first_name": "A"}}, field="subject")
    assert list(exc.value.as_dict()) == ["subject"]
    with pytest.raises(DomainError) as exc:
        templates.compile_template("{{ order.number", field="text")
    assert exc.value.as_dict()["text"].startswith("template error:")
    escape = templates.compile_template("{{ ''.__class__.__mro__[1].__subclasses__() }}", field="title")
    with pytest.raises(DomainError, match="not allowed in a template"):
        templates.render(escape, {}, field="title")


def test_variables_a_template_reads():
    assert templates.variables("{{ order.number }} {% if customer %}{{ customer.email }}{% endif %}") == {
        "order", "customer"}
    assert templates.variables("{% for i in order.items %}{{ i.name }}{% endfor %}") == {"order"}
    assert templates.variables("{{ broken") == set()
