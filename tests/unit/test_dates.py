"""The two date parsers: the native one (ISO 8601 with an offset, in range) and RetailCRM's `Y-m-d H:i:s` (v5).

Properties: what is formatted is read back to the same instant; any input either parses into the accepted range
or fails with the documented ValueError, never anything else.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings, strategies as st

from retento.compat.dates import fmt_date, fmt_datetime, parse_datetime
from retento.core.dates import MAX_DAY, MAX_TIME, MIN_DAY, MIN_TIME, parse_day, parse_time

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)  # stable in CI
ZONES = [ZoneInfo("Europe/Moscow"), ZoneInfo("UTC"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")]
in_range = st.datetimes(min_value=MIN_TIME.replace(tzinfo=None), max_value=MAX_TIME.replace(tzinfo=None),
                        timezones=st.just(UTC))
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
anything = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
                     st.lists(st.text(), max_size=2), st.dictionaries(st.text(), st.text(), max_size=2),
                     st.from_regex(r"-?[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}([T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2})?"
                                   r"(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?", fullmatch=True))


def exists(local: datetime) -> bool:
    """The wall-clock time exists once in its zone (not skipped by, nor repeated by, a clock change)."""
    return local.replace(fold=0).utcoffset() == local.replace(fold=1).utcoffset()


# --- native ------------------------------------------------------------------------------------------------


@PROPERTY
@given(in_range, offsets)
def test_native_round_trip(moment, offset):
    shifted = moment.astimezone(offset)
    assert parse_time(shifted.isoformat()) == moment
    assert parse_time(shifted) == moment
    assert parse_time(moment.isoformat().replace("+00:00", "Z")) == moment


@PROPERTY
@given(anything)
def test_native_parser_accepts_only_aware_times_in_range(value):
    try:
        parsed = parse_time(value)
    except ValueError:
        return
    assert parsed.tzinfo is UTC and MIN_TIME <= parsed <= MAX_TIME


@PROPERTY
@given(st.dates(min_value=MIN_DAY, max_value=MAX_DAY))
def test_native_day_round_trip(day):
    assert parse_day(day.isoformat()) == day == parse_day(day)


@PROPERTY
@given(anything)
def test_native_day_parser_accepts_only_dates_in_range(value):
    try:
        parsed = parse_day(value)
    except ValueError:
        return
    assert isinstance(parsed, date) and MIN_DAY <= parsed <= MAX_DAY


@pytest.mark.parametrize(("value", "reason"), [
    ("0001-01-01T00:00:00+14:00", "between 1900-01-01T00:00:00Z and 2200-12-31T23:59:59Z"),
    ("9999-12-31T23:59:59-12:00", "between"),
    ("9999-12-31T23:59:59Z", "between"),
    ("1899-12-31T23:59:59Z", "between"),
    ("2201-01-01T00:00:00Z", "between"),
    ("1900-01-01T00:30:00+01:00", "between"),  # 1899-12-31T23:30Z
    ("2026-01-31T10:00:00", "time zone offset"),
    (0, "date-time string"),  # a Unix time is not guessed (it was 1970)
    ("0", "not a valid datetime"),
    ("2026-13-01T00:00:00Z", "not a valid datetime"),
    ("２０２６-01-01T00:00:00Z", "not a valid datetime"),  # fullwidth digits
])
def test_native_parser_refuses(value, reason):
    with pytest.raises(ValueError, match=reason):
        parse_time(value)


def test_native_bounds_are_accepted():
    assert parse_time("1900-01-01T00:00:00Z") == MIN_TIME
    assert parse_time("2200-12-31T23:59:59.999999Z") == MAX_TIME
    assert parse_time("1900-01-01T03:00:00+03:00") == MIN_TIME
    assert parse_day("1900-01-01") == MIN_DAY and parse_day("2200-12-31") == MAX_DAY
    for bad in ("1899-12-31", "2201-01-01", "1990-02-30", "19900101", 19900101):
        with pytest.raises(ValueError):
            parse_day(bad)


# --- RetailCRM v5 ------------------------------------------------------------------------------------------


@PROPERTY
@given(in_range, st.sampled_from(ZONES))
def test_v5_round_trip_of_stored_times(moment, tz):
    moment = moment.replace(microsecond=0)
    assume(exists(moment.astimezone(tz)))
    text = fmt_datetime(moment, tz)
    assert len(text) == 19 and text[4] == "-" and text[10] == " "
    assert parse_datetime(text, tz) == moment
    assert fmt_datetime(moment.isoformat(), tz) == text  # the JSON form in history snapshots


@PROPERTY
@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 12, 30)), st.sampled_from(ZONES))
def test_v5_round_trip_of_local_text(local, tz):
    local = local.replace(microsecond=0)
    assume(exists(local.replace(tzinfo=tz)))
    text = f"{local.year:04d}-{local:%m-%d %H:%M:%S}"
    assert fmt_datetime(parse_datetime(text, tz), tz) == text
    day = text[:10]
    assert parse_datetime(day, tz) == parse_datetime(f"{day} 00:00:00", tz)


@PROPERTY
@given(anything, st.sampled_from(ZONES))
def test_v5_parser_accepts_only_local_times_in_range(value, tz):
    try:
        parsed = parse_datetime(value, tz)
    except ValueError:
        return
    assert parsed is None or (parsed.tzinfo is UTC and MIN_TIME <= parsed <= MAX_TIME)


def test_v5_before_1919_in_moscow_keeps_its_old_offset():
    moscow = ZoneInfo("Europe/Moscow")
    for text in ("1900-01-01 02:30:17", "1918-06-01 12:00:00", "1905-03-04 05:06:07"):
        assert fmt_datetime(parse_datetime(text, moscow), moscow) == text
    assert parse_datetime("1900-01-01 02:30:17", moscow) == MIN_TIME  # Moscow mean time, UTC+2:30:17


def test_v5_years_are_four_digits_and_range_is_kept():
    moscow = ZoneInfo("Europe/Moscow")
    assert fmt_datetime(MIN_TIME, ZoneInfo("UTC")) == "1900-01-01 00:00:00"
    assert fmt_datetime(MAX_TIME, moscow) == "2201-01-01 02:59:59"
    assert fmt_datetime(datetime(1, 1, 1, tzinfo=UTC), moscow) == "0001-01-01 02:30:17"
    assert fmt_datetime(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), moscow) == "9999-12-31 23:59:59"
    assert fmt_date(date(1900, 1, 1)) == "1900-01-01" and fmt_date("0987-06-05") == "0987-06-05"
    for bad, reason in (("0001-01-01", "between"), ("9999-12-31 23:59:59", "between"), ("1-01-01", "format"),
                        ("2026-01-01T00:00:00", "format"), ("2026-02-30", "not a valid date"), (20260101, "format")):
        with pytest.raises(ValueError, match=reason):
            parse_datetime(bad, moscow)
    assert parse_datetime("", moscow) is None and parse_datetime(None, moscow) is None
