"""Parsers for untrusted input, one per kind of input. Every boundary (API bodies and parameters, uploaded
files, tracking links, provider webhooks) reads through these, so input that is not what it claims to be
becomes a `DomainError` naming the field (a 4xx), never an exception deeper in.

- `integer`: a decimal integer written in ASCII digits, within bounds (`str.isdigit()` also accepts `¹` or
  `２`, which `int()` then refuses or reads as another number).
- `json_value`: a JSON document that every later step can hold: RFC 8259 JSON (no NaN / Infinity), finite
  numbers, integers of at most 64 bits, no lone surrogates in strings, at most `MAX_DEPTH` levels of nesting.
- `csv_table`: a CSV text with a header row, any line endings.
- `form_fields` / `form_pairs`: form bodies (urlencoded, multipart) whose every field is UTF-8 text.
- `secret_equal`: a signature or secret from a request against the expected one, in constant time, for any text.
- `Flag`: the pydantic type of a boolean input: JSON `true` / `false` only (pydantic alone also takes `0.0`,
  `1` or `"yes"`); text formats (CSV cells) say what their words mean with `flag_word`.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import math
import re
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

import orjson
from pydantic import Strict

from retento.core.errors import DomainError

DIGITS = re.compile(r"[0-9]+")
INT64_MAX = 2**63 - 1
JSON_INT_MIN, JSON_INT_MAX = -(2**63), 2**64 - 1  # what a 64-bit integer (signed or unsigned) holds
MAX_DEPTH = 64  # levels of nested objects / arrays in a JSON document
_ORJSON_DEPTH = 254  # orjson refuses to write deeper values; wrapping a value in lists makes it check MAX_DEPTH


Flag = Annotated[bool, Strict()]
FLAG_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False, "да": True,
              "нет": False, "д": True, "н": False}


def flag_word(text: str) -> bool | str:
    """A yes / no word of a text cell as a boolean (English or Russian, any case); other text as it is, for the
    schema to refuse naming the field."""
    return FLAG_WORDS.get(text.strip().lower(), text)


# --- integers --------------------------------------------------------------------------------------------


def integer(text: object, *, lo: int = 0, hi: int = INT64_MAX) -> int | None:
    """`text` as an integer if it is a string of ASCII digits (a leading `-` when `lo` < 0) whose value lies in
    [lo, hi]; else None, and the caller names the field."""
    if not isinstance(text, str) or len(text) > 20:
        return None
    digits = text[1:] if text.startswith("-") and lo < 0 else text
    if not DIGITS.fullmatch(digits):
        return None
    value = int(text)
    return value if lo <= value <= hi else None


# --- JSON ------------------------------------------------------------------------------------------------


class _Bad:
    """Stands for a number JSON allows but nothing later can hold, while looking for where it is."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_value(raw: bytes | str, *, root: str = "body") -> Any:
    """The parsed document; DomainError naming `root` (a document that is not JSON) or the dotted path of the
    first value that breaks a rule (`custom_fields.a`, `items.0.price`)."""
    try:
        value = json.loads(raw, parse_float=_finite, parse_constant=_refuse)
        wrapped = value
        for _ in range(_ORJSON_DEPTH - MAX_DEPTH):
            wrapped = [wrapped]
        orjson.dumps(wrapped)  # in C: integers beyond 64 bits, lone surrogates, nesting deeper than MAX_DEPTH
        return value
    except UnicodeDecodeError:
        raise DomainError.one(root, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DomainError.one(root, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, TypeError, RecursionError):
        pass
    raise DomainError.one(*_first_problem(raw, root))


def _first_problem(raw: bytes | str, root: str) -> tuple[str, str]:
    """(field, reason) of the first value `json_value` refused; the slow path, taken only for bad input."""
    def number(text: str) -> Any:
        value = float(text)
        return value if math.isfinite(value) else _Bad("number out of range")

    def whole(text: str) -> Any:
        if len(text) > 21:
            return _Bad("integer out of range (64 bits at most)")
        return int(text)

    try:
        value = json.loads(raw, parse_float=number, parse_int=whole, parse_constant=lambda n: _Bad(f"{n} is not JSON"))
    except RecursionError:
        return root, f"nested deeper than {MAX_DEPTH} levels"
    found = _find(value, [])
    return (".".join(found[0]) or root, found[1]) if found else (root, "not valid JSON")


def _find(item: Any, path: list[str]) -> tuple[list[str], str] | None:
    """The path and reason of the first bad value in document order (recursion bounded by MAX_DEPTH)."""
    if isinstance(item, _Bad):
        return path, item.reason
    if isinstance(item, int) and not isinstance(item, bool) and not JSON_INT_MIN <= item <= JSON_INT_MAX:
        return path, "integer out of range (64 bits at most)"
    if isinstance(item, str) and not _utf8(item):
        return path, "text with an unpaired surrogate (\\ud800-\\udfff) is not Unicode"
    if isinstance(item, dict | list) and len(path) >= MAX_DEPTH:
        return path, f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(item, dict):
        for key, value in item.items():
            if not _utf8(key):
                return [*path, "<key>"], "a key with an unpaired surrogate is not Unicode"
            if found := _find(value, [*path, key]):
                return found
    elif isinstance(item, list):
        for n, value in enumerate(item):
            if found := _find(value, [*path, str(n)]):
                return found
    return None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- CSV, forms ------------------------------------------------------------------------------------------


def csv_table(text: str, *, field: str = "file") -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line, row)]): a CSV with a header row; lines may end in LF, CRLF or a bare CR, a byte order
    mark is skipped. `line` is the line a row starts on. DomainError naming `field` for unreadable CSV."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    rows = []
    try:
        header = list(reader.fieldnames or ())
        line = reader.line_num + 1
        for row in reader:
            rows.append((line, {k: v for k, v in row.items() if isinstance(k, str) and isinstance(v, str)}))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise DomainError.one(field, f"unreadable CSV at line {reader.line_num}: {exc}") from None
    return header, rows


URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


def form_fields(raw: bytes, *, field: str = "body") -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body; a repeated name keeps its last value."""
    try:
        return dict(form_pairs(URLENCODED, raw))
    except DomainError:
        raise DomainError.one(field, "not UTF-8 form data") from None


def form_pairs(content_type: str | None, raw: bytes) -> list[tuple[str, str]]:
    """(name, value) of every field of a form body, in order: `application/x-www-form-urlencoded` (raw or
    percent-encoded UTF-8) or `multipart/form-data` (file parts are not fields). A body of another type has
    none. DomainError naming the first field whose name or value is not UTF-8 text (Starlette's own form
    parser turns such bytes into U+FFFD or latin-1 text, which then got stored)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == URLENCODED:
        pairs = []
        for pair in raw.split(b"&"):
            if pair:
                name, _, value = (unquote_to_bytes(part.replace(b"+", b" ")) for part in pair.partition(b"="))
                pairs.append((name, value))
    elif media == MULTIPART:
        pairs = _multipart(content_type or "", raw)
    else:
        return []
    return [_form_text(name, value) for name, value in pairs]


def _multipart(content_type: str, raw: bytes) -> list[tuple[bytes, bytes]]:
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        return []
    out = []
    for part in message.iter_parts():
        if not isinstance(part, Message) or part.get_filename() is not None:
            continue
        name, payload = part.get_param("name", header="content-disposition"), part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            out.append((name.encode("utf-8", "surrogateescape"), payload))
    return out


def _form_text(name: bytes, value: bytes) -> tuple[str, str]:
    try:
        return name.decode("utf-8"), value.decode("utf-8")
    except UnicodeDecodeError:
        raise DomainError.one(name.decode("utf-8", "replace"), "must be UTF-8 text") from None


def secret_equal(expected: str, given: object) -> bool:
    """Whether `given` (a header, a link parameter, a field of a body: anything) is exactly `expected`."""
    if not isinstance(given, str) or not _utf8(given):
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
