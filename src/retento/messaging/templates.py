"""Message templates: the sandbox (`core.templates`), checked against a sample when saved; tracking added to
rendered email HTML."""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from retento.core.errors import DomainError, FieldError
from retento.core.templates import compile_template, render

MAX_LENGTH = 100_000

# What every template can use; the check at save time renders against this sample so a typo fails then.
SAMPLE = {
    "customer": {"id": 1, "first_name": "Анна", "last_name": "Иванова", "patronymic": "Сергеевна",
                 "email": "anna@example.com", "phone": "+79161234567", "external_id": "c-1",
                 "birthday": date(1990, 5, 17), "custom_fields": {}},
    "order": {"id": 1, "number": "1001A", "status": "complete", "total": "1990.00", "currency": "RUB",
              "items": [{"name": "Товар", "quantity": 1, "price": "1990.00"}]},
    "loyalty": {"balance": "350", "level": "Silver", "burn_amount": "100", "burn_date": date(2026, 12, 31)},
    "site": {"code": "shop", "name": "Shop"},
    "vars": {},
}


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    text: str
    html: str | None


def _compile(field: str, source: str | None, html: bool = False, strict: bool = True):
    return None if source is None else compile_template(source, field=field, html=html, strict=strict)


def check(*, subject: str | None, body: str, html: str | None) -> Rendered:
    """Compile and render against the sample; any error (syntax, unknown variable, sandbox) names the field."""
    out: dict[str, str | None] = {}
    errors = []
    for field, source, is_html in (("subject", subject, False), ("body", body, False), ("html", html, True)):
        if source is not None and len(source) > MAX_LENGTH:
            errors.append(FieldError(field, f"longer than {MAX_LENGTH} characters"))
            continue
        try:
            tpl = _compile(field, source, is_html)
            out[field] = render(tpl, SAMPLE, field=field) if tpl is not None else None
        except DomainError as exc:
            errors += exc.errors
    if errors:
        raise DomainError(errors, status=422)
    return Rendered(out["subject"], out["body"] or "", out["html"])


class Renderer:
    """Compiles each template once and renders it for many customers (the send worker's hot path)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str], Any] = {}

    def render(self, template_id: int, parts: dict[str, str | None], context: dict[str, Any]) -> Rendered:
        values = {}
        for field in ("subject", "body", "html"):
            key = (template_id, field)
            if key not in self._cache:
                self._cache[key] = _compile(field, parts.get(field), field == "html", strict=False)
            tpl = self._cache[key]
            values[field] = tpl.render(context) if tpl is not None else None
        return Rendered(values["subject"], values["body"] or "", values["html"])


def context_for(sheet: dict[str, Any], site: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    extra = extra or {}
    customer = {k: sheet.get(k) for k in SAMPLE["customer"]}
    customer["custom_fields"] = sheet.get("custom_fields") or {}
    return {"customer": customer, "order": extra.get("order") or {}, "loyalty": extra.get("loyalty") or {},
            "site": site, "vars": extra.get("vars") or {}}


_HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)


def track_html(html: str, *, pixel_url: str, click_url: Callable[[str], str]) -> str:
    """Links go through the click redirect; a 1x1 open pixel goes at the end of the body."""
    html = _HREF.sub(lambda m: f'href="{htmllib.escape(click_url(_unescape(m.group(1))))}"', html)
    pixel = f'<img src="{pixel_url}" width="1" height="1" alt="" style="display:none">'
    idx = html.lower().rfind("</body>")
    return html[:idx] + pixel + html[idx:] if idx >= 0 else html + pixel


def _unescape(url: str) -> str:
    return url.replace("&amp;", "&")
