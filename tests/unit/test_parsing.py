"""Property tests of the input parsers: for any input each one returns a value of its kind or raises its one
documented error (DomainError / BadParameter / ValueError), and reads back what a well-formed writer wrote."""

from __future__ import annotations

import csv
import io
import json
import math
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import example, given, settings, strategies as st
from pydantic import TypeAdapter, ValidationError

from retento.compat import mapping, params
from retento.core import parsing
from retento.core.errors import DomainError
from retento.messaging import tracking
from retento.messaging.channels import vk, whatsapp

settings.register_profile("parsers", max_examples=200, deadline=None, derandomize=True, database=None)
settings.load_profile("parsers")

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=20))
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)
storable_scalars = (st.none() | st.booleans() | st.integers(parsing.JSON_INT_MIN, parsing.JSON_INT_MAX)
                    | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(st.characters(exclude_categories=["Cs"]), max_size=20))
storable = st.recursive(storable_scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=8), inner,
                                          max_size=4), max_leaves=30)


# --- parsing.integer -------------------------------------------------------------------------------------


@given(st.one_of(st.text(max_size=25), st.integers(), st.none(), st.lists(st.text(max_size=3))),
       st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1))
@example("¹", 0, 10)
@example("٣", 0, 10)
@example(" 1", 0, 10)
@example("1_0", 0, 100)
def test_integer_is_an_int_in_bounds_or_none(text, lo, hi):
    value = parsing.integer(text, lo=lo, hi=hi)
    if value is not None:
        digits = text.removeprefix("-")
        assert type(value) is int and lo <= value <= hi and int(text) == value
        assert digits and all(c in "0123456789" for c in digits)


@given(st.integers(0, 2**63 - 1))
def test_integer_reads_what_str_wrote(n):
    assert parsing.integer(str(n)) == n
    assert parsing.integer(str(n), hi=n - 1) is None


# --- parsing.json_value ----------------------------------------------------------------------------------


@given(st.binary(max_size=60) | st.text(max_size=60).map(str.encode))
@example(b"[" * 2000 + b"]" * 2000)
@example(b"1" * 5000)
@example(b'"\\ud800"')
@example(b"\xef\xbb\xbf{}")
@example(b"NaN")
def test_json_value_of_any_bytes_is_storable_or_a_domain_error(raw):
    try:
        value = parsing.json_value(raw)
    except DomainError as exc:
        assert exc.errors and exc.errors[0].field and exc.errors[0].reason
        return
    orjson.dumps(value)  # what the database layer does with it


@given(storable)
def test_json_value_reads_back_what_was_written(value):
    raw = json.dumps(value)
    if raw.count("[") + raw.count("{") <= parsing.MAX_DEPTH:  # hypothesis' values are shallow
        assert parsing.json_value(raw) == json.loads(raw) or _has_nan(value)


def _has_nan(value):
    return isinstance(value, float) and math.isnan(value)


@given(json_like)
def test_json_value_refuses_what_cannot_be_stored_naming_where(value):
    raw = json.dumps({"root": value}, allow_nan=True)
    try:
        parsed = parsing.json_value(raw)
    except DomainError as exc:
        field, reason = exc.errors[0].field, exc.errors[0].reason
        assert field == "body" or field.startswith("root"), field
        assert any(word in reason for word in ("64 bits", "out of range", "not JSON", "surrogate", "nested")), reason
        return
    orjson.dumps(parsed)


@pytest.mark.parametrize(("raw", "field", "reason"), [
    ('{"a": {"b": [1, 18446744073709551616]}}', "a.b.1", "64 bits"),
    ('{"a": -9223372036854775809}', "a", "64 bits"),
    ('{"a": 1e999}', "a", "out of range"),
    ('{"a": [NaN]}', "a.0", "not JSON"),
    ('{"a": "\\udc00"}', "a", "surrogate"),
    ('{"a": ' + "[" * 70 + "]" * 70 + "}", "a" + ".0" * 63, "nested deeper"),
    ("[1,", "body", "not valid JSON"),
])
def test_json_value_names_the_first_bad_value(raw, field, reason):
    with pytest.raises(DomainError) as exc:
        parsing.json_value(raw)
    assert exc.value.errors[0].field == field and reason in exc.value.errors[0].reason


def test_json_value_keeps_64_bit_integers():
    assert parsing.json_value(b"[18446744073709551615, -9223372036854775808]") == [2**64 - 1, -(2**63)]


# --- parsing.Flag, flag_word -----------------------------------------------------------------------------


@given(json_like)
@example(0.0)
@example(1)
@example("yes")
def test_flag_is_a_json_boolean_and_nothing_else(value):
    try:
        assert TypeAdapter(parsing.Flag).validate_python(value) is value
    except ValidationError:
        assert not isinstance(value, bool)
    else:
        assert isinstance(value, bool)


@given(st.text(max_size=6))
def test_flag_word_of_any_text(text):
    value = parsing.flag_word(text)
    assert isinstance(value, bool) or value == text
    assert parsing.flag_word(" Да ") is True and parsing.flag_word("NO") is False


# --- parsing.csv_table, form_fields, secret_equal ----------------------------------------------------------


@given(st.text(max_size=80))
@example('a\n"1\r2"x\r3\n')
@example("a\rb\r")
@example('a\n"unterminated')
def test_csv_table_of_any_text_is_rows_or_a_domain_error(text):
    try:
        header, rows = parsing.csv_table(text)
    except DomainError as exc:
        assert exc.errors[0].field == "file"
        return
    assert all(isinstance(h, str) for h in header)
    assert all(isinstance(line, int) and all(isinstance(v, str) for v in row.values()) for line, row in rows)


@given(st.lists(st.lists(st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=6),
                         min_size=2, max_size=2), min_size=1, max_size=6),
       st.sampled_from(["\n", "\r\n", "\r"]))
def test_csv_table_reads_back_what_csv_wrote(table, newline):
    out = io.StringIO()
    csv.writer(out, lineterminator=newline, quoting=csv.QUOTE_ALL).writerows([["a", "b"], *table])
    header, rows = parsing.csv_table(out.getvalue())
    assert header == ["a", "b"]
    assert [[r["a"], r["b"]] for _, r in rows] == table


@given(st.binary(max_size=60))
@example(b"a=%ff")
@example(b"\xff=1")
def test_form_fields_of_any_bytes(raw):
    try:
        fields = parsing.form_fields(raw)
    except DomainError as exc:
        assert exc.errors[0].field == "body"
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


@given(st.dictionaries(st.text(max_size=8).filter(lambda k: "\ud800" > k or k > "\udfff"),
                       st.text(st.characters(exclude_categories=["Cs"]), max_size=8)))
def test_form_fields_read_back_what_urlencode_wrote(fields):
    fields = {k: v for k, v in fields.items() if parsing.secret_equal(k, k)}
    assert parsing.form_fields(urlencode(fields).encode()) == fields


@given(st.text(max_size=20), st.one_of(st.text(max_size=20), st.none(), st.integers(), st.binary(max_size=5)))
def test_secret_equal_of_anything(expected, given_):
    assert parsing.secret_equal(expected, given_) is (given_ == expected and parsing.secret_equal(expected, expected))


# --- RetailCRM v5 parameters ----------------------------------------------------------------------------

keys = st.text(st.sampled_from("abf[]0"), max_size=12) | st.sampled_from(
    ["page", "page[]", "page[a]", "limit", "filter[ids][]", "filter[ids][0]", "filter[sites][a][b]", "filter",
     "filter[sinceId]", "filter[email][]", "by", "site[]", "ids[]"])
values = st.text(max_size=6) | st.sampled_from(["¹", "1", "20", "50", "None", "", "-1", "9" * 25])
pairs = st.lists(st.tuples(keys, values), max_size=8)


@given(pairs)
def test_nested_of_any_pairs_is_strings_lists_and_objects(items):
    def ok(node):
        if isinstance(node, dict):
            return all(isinstance(k, str) and ok(v) for k, v in node.items())
        if isinstance(node, list):
            return all(isinstance(v, str) for v in node)
        return isinstance(node, str)

    assert ok(params.nested(items))


@given(pairs)
def test_every_v5_parameter_reader_gives_its_kind_or_bad_parameter(items):
    query = params.nested(items)
    readers = [
        lambda: params.paging(query), lambda: params.text(query, "page"), lambda: params.integer(query, "page"),
        lambda: params.integers(query, "ids"), lambda: params.texts(query, "ids"),
        lambda: params.choice(query, "by", ("externalId", "id"), "externalId"),
        lambda: params.Filter(query).integers("ids"), lambda: params.Filter(query).integer("sinceId"),
        lambda: params.Filter(query).texts("sites"), lambda: params.Filter(query).text("email"),
    ]
    for read in readers:
        try:
            value = read()
        except params.BadParameter as exc:
            assert exc.errors[0].field and exc.errors[0].reason
            continue
        assert value is None or isinstance(value, str | int | tuple | list)
        if isinstance(value, list):
            assert all(isinstance(v, str | int) for v in value)


@given(st.dictionaries(st.sampled_from(["items", "customFields", "delivery", "payments", "discountManualAmount",
                                        "externalId", "site", "status", "number"]), json_like, max_size=5),
       st.lists(st.dictionaries(st.sampled_from(["offer", "productName", "initialPrice", "quantity",
                                                 "discountManualAmount", "discountManualPercent"]),
                                json_like | st.sampled_from(["1e30", "10", 1e30, "-5", "0.5"]), max_size=6),
                max_size=3))
@example({}, [{"initialPrice": 10, "discountManualPercent": 1e30}])
@example({}, [{"initialPrice": "1e13", "quantity": "9e13", "discountManualAmount": "9e13"}])
def test_v5_order_entity_maps_or_is_a_value_error(entity, items):
    if items:
        entity = {**entity, "items": items}
    try:
        raw = mapping.order_in(entity, ZoneInfo("Europe/Moscow"))
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(raw, dict)


@given(st.dictionaries(st.sampled_from(["externalId", "phones", "tags", "subscribed", "customFields", "email"]),
                       json_like, max_size=5))
def test_v5_customer_entity_maps_or_is_a_value_error(entity):
    try:
        assert isinstance(mapping.customer_in(entity, ZoneInfo("Europe/Moscow")), dict)
    except ValueError:
        pass


# --- tracking tokens, provider webhook bodies -------------------------------------------------------------


@given(st.text(max_size=40))
@example("1.é")
@example("¹.abc")
def test_tracking_token_of_any_text_is_ours_or_none(text):
    assert tracking.message_id("s3cret", text) is None


@given(st.integers(1, 2**63 - 1), st.text(max_size=30))
def test_tracking_token_round_trip(mid, url):
    tok = tracking.token("s3cret", mid)
    assert tracking.message_id("s3cret", tok) == mid and tracking.message_id("other", tok) is None
    assert tracking.link_ok("s3cret", tok, url, tracking.link_sig("s3cret", tok, url))
    assert not tracking.link_ok("s3cret", tok, url + "x", tracking.link_sig("s3cret", tok, url))


wa_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.fixed_dictionaries(
    {}, optional={k: inner for k in ("entry", "changes", "value", "statuses", "id", "status", "timestamp",
                                     "errors", "code", "title")}), max_leaves=25)


@given(wa_like)
def test_whatsapp_statuses_of_any_json_is_a_list_or_a_domain_error(payload):
    try:
        ups = whatsapp.statuses(payload)
    except DomainError as exc:
        assert exc.errors[0].field
        return
    assert all(isinstance(u.provider_id, str) and isinstance(u.status, str) for u in ups)


def test_whatsapp_statuses_of_the_reference_payload():
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "statuses": [{"id": "wamid.X", "status": "delivered",
                                                       "timestamp": "1603059201", "recipient_id": "7916"}]}}]}]}
    [up] = whatsapp.statuses(body)
    assert (up.provider_id, up.status, int(up.at.timestamp())) == ("wamid.X", "delivered", 1603059201)


@given(st.one_of(json_like, st.fixed_dictionaries({"type": st.sampled_from(["message_read", "message_deny", "x"])},
                                                  optional={"object": json_like, "secret": json_like})))
def test_vk_callback_of_any_json_is_an_event_or_a_domain_error(payload):
    try:
        call = vk.callback(payload)
        for model in (vk.MessageRead, vk.MessageDeny):
            try:
                vk.event_object(model, call)
            except DomainError as exc:
                assert exc.errors[0].field.startswith("object")
    except DomainError as exc:
        assert exc.errors[0].field
