"""The console's catalogs: every string has a Russian translation, the committed .mo files match the .po files,
and the template strings are all in the catalog; Babel formats in the user's locale and time zone."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from retento.console.i18n import LOCALE_DIR, Formats, negotiate


def catalog(lang: str, kind: str = "po"):  # noqa: ANN201
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"messages.{kind}"
    with path.open("rb") as f:
        return read_po(f) if kind == "po" else read_mo(f)


def test_every_string_has_a_russian_translation_and_the_mo_is_current() -> None:
    for lang in ("en", "ru"):
        po, mo = catalog(lang), catalog(lang, "mo")
        if lang == "ru":
            assert [m.id for m in po if m.id and not m.string] == []
            assert not any(m.fuzzy for m in po if m.id)
        assert {m.id: m.string for m in po if m.id and m.string} == {m.id: m.string for m in mo if m.id}, lang


def test_the_catalog_has_every_string_of_the_code(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F",
                    "src/retento/console/babel.cfg", "-k", "N_", "--no-location", "-o", str(out), "."],
                   check=True, capture_output=True)
    with io.open(out, "rb") as f:
        wanted = {m.id for m in read_po(f) if m.id}
    missing = sorted(wanted - {m.id for m in catalog("ru") if m.id})
    assert missing == [], "run `make translations` and translate: " + ", ".join(missing)


def test_formats_follow_locale_and_time_zone() -> None:
    at = datetime(2026, 3, 1, 22, 30, tzinfo=timezone.utc)
    ru, en = Formats("ru", "Europe/Moscow"), Formats("en", "UTC")
    assert ru.date(at) == "2 мар. 2026\u202fг."  # already the 2nd in Moscow
    assert en.date(at) == "Mar 1, 2026"
    assert ru.money(Decimal("1234.5"), "RUB") == "1\xa0234,50\xa0₽"
    assert en.money(Decimal("1234.5"), "EUR") == "€1,234.50"
    assert ru.number(1234567) == "1\xa0234\xa0567"
    assert negotiate("ru-RU,ru;q=0.9,en;q=0.5") == "ru" and negotiate("de") == "en" and negotiate(None) == "en"
