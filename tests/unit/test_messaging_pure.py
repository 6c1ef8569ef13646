"""Pure messaging decisions: quiet hours, policies, cascade steps, cheapest-read order, template sandbox."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from retento.core.errors import DomainError
from retento.messaging import cascade as cz, policies, templates

UTC = timezone.utc
SHEET = {"id": 1, "email": "a@b.ru", "phone": "+79161234567", "consents": {"email": True, "sms": False},
         "timezone": "Asia/Vladivostok"}


def test_quiet_hours_in_the_customers_zone():
    # 12:30 UTC is 22:30 in Vladivostok (UTC+10): quiet until 09:00 local = 23:00 UTC
    now = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
    assert policies.quiet_until(now, "Asia/Vladivostok", 21 * 60, 9 * 60) == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    assert policies.quiet_until(now, "Europe/Moscow", 21 * 60, 9 * 60) is None  # 15:30 in Moscow
    # after midnight: wake the same local morning
    early = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)  # 03:30 Moscow
    assert policies.quiet_until(early, "Europe/Moscow", 21 * 60, 9 * 60) == datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    assert policies.quiet_until(early, "Europe/Moscow", None, None) is None


def test_policy_decisions():
    now = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
    pol = policies.Policy(cap_count=2)
    kw = dict(sheet=SHEET, policy=pol, site_timezone="Europe/Moscow")
    d = policies.decide(now, channel="email", message_class="marketing", to="a@b.ru", recent=0, **kw)
    assert d.send and d.not_before == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # deferred, not dropped
    assert policies.decide(now, channel="sms", message_class="transactional", to="+7916", recent=0, **kw).reason \
        == "no_consent"  # transactional never skips consent
    assert policies.decide(now, channel="email", message_class="marketing", to=None, recent=0, **kw).reason == \
        "no_contact"
    assert policies.decide(now, channel="email", message_class="marketing", to="a", recent=2, **kw).reason == \
        "frequency_cap"
    t = policies.decide(now, channel="email", message_class="transactional", to="a", recent=9, **kw)
    assert t.send and t.not_before is None  # transactional skips caps and quiet hours


def test_next_action():
    now = datetime(2026, 3, 2, tzinfo=UTC)
    step = cz.Step("email", "t", 3600, cz.NOT_READ)
    o = cz.Outcome
    assert cz.next_action(None, None, now).kind == "advance"
    assert cz.next_action(o(False, True, True, False), step, now) == cz.Next("finish", "read")
    assert cz.next_action(o(False, True, False, False), step, now).kind == "advance"
    assert cz.next_action(o(True, False, False, False), step, now) == cz.Next("wait", due_at=now + cz.RECHECK)
    nd = cz.Step("sms", "t", 3600, cz.NOT_DELIVERED)
    assert cz.next_action(o(False, True, False, False), nd, now) == cz.Next("finish", "delivered")
    assert cz.next_action(o(False, False, False, False), nd, now).kind == "advance"
    f = cz.Step("sms", "t", 3600, cz.FAILED)
    assert cz.next_action(o(False, False, False, True), f, now).kind == "advance"
    assert cz.next_action(o(False, False, False, False), f, now).kind == "finish"


def test_window_counts_from_the_messages_own_send_time():
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    step = cz.Step("email", "t", 3600, cz.NOT_READ)
    late = cz.Outcome(False, False, False, False, sent_at=now - timedelta(minutes=20))
    assert cz.next_action(late, step, now) == cz.Next("wait", due_at=now + timedelta(minutes=40))
    on_time = cz.Outcome(False, False, False, False, sent_at=now - timedelta(hours=1))
    assert cz.next_action(on_time, step, now).kind == "advance"
    read = cz.Outcome(False, True, True, False, sent_at=now - timedelta(minutes=1))
    assert cz.next_action(read, step, now) == cz.Next("finish", "read")  # a read ends the run at once
    failed = cz.Outcome(False, False, False, True, sent_at=now - timedelta(minutes=1))
    assert cz.next_action(failed, step, now).kind == "advance"  # a failure goes on at once


def test_cheapest_read_order_uses_own_history_then_average():
    steps = [cz.Step("whatsapp", "t", 1), cz.Step("email", "t", 1)]
    prices = {"email": Decimal("0.03"), "whatsapp": Decimal("5.6")}
    avg = {"email": 0.2, "whatsapp": 0.9}
    assert cz.cheapest_plan(steps, prices, avg, {}) == [1, 0]  # 0.15 per read beats 6.2
    # this customer never reads email (0 of 40): expected cost per read of email rises above WhatsApp's
    assert cz.cheapest_plan(steps, prices, avg, {"email": (0, 40)}) == [1, 0]
    never = {"email": (0, 400), "whatsapp": (10, 10)}
    assert cz.cheapest_plan(steps, {"email": Decimal("1"), "whatsapp": Decimal("5.6")}, avg, never) == [0, 1]
    assert cz.read_rate(0, 0, 0.2) == 0.2


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ customer.__class__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].system('true') }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    "{{ customer.first_name.format.__globals__ }}",
])
def test_sandbox_escapes_are_rejected_when_saved(source):
    with pytest.raises(DomainError) as exc:
        templates.check(subject=None, body=source, html=None)
    assert "body" in exc.value.as_dict()


def test_template_checks():
    with pytest.raises(DomainError) as exc:
        templates.check(subject="{{ customer.frist_name }}", body="{% if %}", html=None)
    assert set(exc.value.as_dict()) == {"subject", "body"}
    r = templates.check(subject="Hi {{ customer.first_name }}", body="{{ loyalty.balance }} points",
                        html="<b>{{ customer.first_name }}</b>")
    assert r.subject == "Hi Анна" and r.text == "350 points" and r.html == "<b>Анна</b>"
    r = templates.Renderer().render(1, {"body": "<{{ vars.x }}>", "html": "{{ vars.x }}"},
                                    {"vars": {"x": "<script>"}, "customer": {}})
    assert r.text == "<<script>>" and r.html == "&lt;script&gt;"  # HTML is escaped, text is not


def test_track_html():
    out = templates.track_html('<body><a href="https://x.ru/?a=1&amp;b=2">x</a></body>', pixel_url="P",
                               click_url=lambda u: f"C?u={u}&s=1")
    assert 'href="C?u=https://x.ru/?a=1&amp;b=2&amp;s=1"' in out and out.endswith('<img src="P" width="1" '
                                                                                 'height="1" alt="" '
                                                                                 'style="display:none"></body>')


def test_window_end():
    now = datetime(2026, 3, 2, tzinfo=UTC)
    assert cz.window_end(now, cz.Step("email", "t", 7200)) == now + timedelta(hours=2)
