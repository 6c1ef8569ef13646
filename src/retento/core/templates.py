"""The one template language: Jinja2 in an immutable sandbox. Message templates (messaging) and the texts of
trigger actions (a task's title and text) are written in it: `{{ order.number }}`, filters, `{% if %}`; no
attribute of Python's internals is reachable and nothing can be changed.

A value that is None renders as empty. `compile` checks the syntax (a DomainError naming the field). Strict
templates fail on an unknown variable (checking a message template against its sample when saved); lenient ones
render what is missing (no order, no loyalty account) as empty (sending, acting).

Trigger definitions written before triggers used the sandbox say `{order.number}`: `from_legacy` turns these
placeholders (`{order|customer|event|trigger.<field>}`) into `{{ order.number }}` when a definition is loaded, so
stored triggers keep working and both spellings can be mixed."""

from __future__ import annotations

import re
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, Template, TemplateError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from retento.core.errors import DomainError


def _blank(value: Any) -> Any:
    return "" if value is None else value


_ENVS = {(strict, html): ImmutableSandboxedEnvironment(undefined=StrictUndefined if strict else ChainableUndefined,
                                                       autoescape=html, finalize=_blank)
         for strict in (False, True) for html in (False, True)}
LEGACY = re.compile(r"(?<!\{)\{(order|customer|event|trigger)\.([A-Za-z_]\w*)\}(?!\})")


def compile_template(source: str, *, field: str, html: bool = False, strict: bool = False) -> Template:
    """The compiled template; a syntax error is a DomainError naming `field`. `html`: values are escaped."""
    try:
        return _ENVS[strict, html].from_string(source)
    except TemplateError as exc:
        raise DomainError.one(field, f"template error: {exc}") from None


def render(template: Template, context: dict[str, Any], *, field: str) -> str:
    """Render; whatever fails (the sandbox refusing an attribute, an unknown variable of a strict template, a
    type error) is a DomainError naming `field`."""
    try:
        return template.render(context)
    except SecurityError as exc:
        raise DomainError.one(field, f"not allowed in a template: {exc}") from None
    except TemplateError as exc:
        raise DomainError.one(field, f"does not render: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure to render is a bad template
        raise DomainError.one(field, f"does not render: {type(exc).__name__}: {exc}") from None


def variables(source: str) -> set[str]:
    """The top-level names a template reads (`order`, `customer`, ...); none for a template that does not
    compile."""
    try:
        return set(meta.find_undeclared_variables(_ENVS[False, False].parse(source)))
    except TemplateError:
        return set()


def from_legacy(text: str) -> str:
    """`{order.number}` placeholders as the sandbox's `{{ order.number }}`; everything else unchanged."""
    return LEGACY.sub(lambda m: "{{ %s.%s }}" % (m.group(1), m.group(2)), text)
