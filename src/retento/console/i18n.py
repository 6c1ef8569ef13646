"""The console's languages: gettext catalogs (locale/<lang>/LC_MESSAGES/messages.mo, compiled from the .po by
`make translations`), and numbers, money and dates formatted with Babel in a user's locale and time zone."""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = {"en": "English", "ru": "Русский"}
DEFAULT = "en"


def N_(message: str) -> str:  # noqa: N802 - the gettext marker: extracted by Babel, translated where shown
    return message


# Words shown from data through `_(value|capitalize)`, listed so the catalogs have them: roles, sources of change
DATA_WORDS = (N_("Admin"), N_("Marketer"), N_("Operator"), N_("Viewer"), N_("Api"), N_("User"), N_("Trigger"),
              N_("Robot"), N_("Import"), N_("System"), N_("Demo"))


@cache
def translations(lang: str) -> gettext.GNUTranslations:
    return gettext.translation("messages", localedir=LOCALE_DIR, languages=[lang])


def negotiate(accept_language: str | None) -> str:
    """The best of our languages for an Accept-Language header (for pages shown before sign-in)."""
    wanted = [part.split(";")[0].strip().replace("-", "_") for part in (accept_language or "").split(",")]
    found = Locale.negotiate([w for w in wanted if w], list(LANGUAGES), sep="_")
    return str(found) if found else DEFAULT


@dataclass(frozen=True)
class Formats:
    """Formatting in one user's locale and time zone (templates get it as `fmt`)."""

    lang: str
    timezone: str = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def number(self, value: int | float | Decimal | None, digits: int | None = None) -> str:
        if value is None:
            return "—"
        fmt = None if digits is None else "#,##0." + "0" * digits if digits else "#,##0"
        return format_decimal(value, format=fmt, locale=self.lang)

    def percent(self, value: float | Decimal | None) -> str:
        return "—" if value is None else format_percent(value, format="#,##0.#%", locale=self.lang)

    def money(self, amount: Decimal | int | float | None, currency: str) -> str:
        if amount is None:
            return "—"
        return format_currency(amount, currency, locale=self.lang)

    def datetime(self, value: datetime | None, style: str = "medium") -> str:
        return "—" if value is None else format_datetime(value, style, tzinfo=self.zone, locale=self.lang)

    def date(self, value: date | datetime | None, style: str = "medium") -> str:
        if value is None:
            return "—"
        if isinstance(value, datetime):
            value = value.astimezone(self.zone).date()
        return format_date(value, style, locale=self.lang)

    def month(self, value: date) -> str:
        return format_date(value, "LLL yyyy", locale=self.lang)
