"""Merging a duplicate from the customer card over HTTP: found by phone, email or id on the card's site, shown
for confirmation, merged through the customers service; errors on the card, old links lead to the kept customer."""

from __future__ import annotations

import re

from tests import factories as f
from tests.console.conftest import add_user, sign_in


def _pair(world):
    app = world.app
    keep = f.customer(app, site="north", first_name="Anna", email="anna@example.com")
    dup = f.customer(app, site="north", first_name="Аня", phone="+79161234567", external_id="old-7")
    f.order(app, site="north", customer={"id": dup})
    return keep, dup


def test_an_operator_finds_confirms_and_merges_a_duplicate(world, client) -> None:  # noqa: ANN001
    keep, dup = _pair(world)
    csrf = sign_in(client, "operator@example.com")
    card = client.get(f"/customers/{keep}").text
    assert "Merge duplicate" in card and 'name="duplicate"' in card
    found = client.post(f"/customers/{keep}/merge", data={"csrf_token": csrf, "duplicate": "8 (916) 123-45-67"})
    assert found.status_code == 200
    assert f"Merge customer {dup} into customer {keep}?" in found.text and "old-7" in found.text
    assert re.search(rf'name="duplicate_id" value="{dup}"', found.text)
    done = client.post(f"/customers/{keep}/merge", data={"csrf_token": csrf, "duplicate_id": str(dup)})
    assert done.status_code == 303 and done.headers["location"] == f"/customers/{keep}?merged={dup}"
    card = client.get(done.headers["location"]).text
    assert f"Customer {dup} was merged into this customer." in card
    assert "+79161234567" in card and "old-7" in card
    old = client.get(f"/customers/{dup}")
    assert old.status_code == 303 and old.headers["location"] == f"/customers/{keep}?merged={dup}"
    again = client.post(f"/customers/{keep}/merge", data={"csrf_token": csrf, "duplicate": str(dup)})
    assert again.status_code == 400 and f"Customer {dup} was merged into customer {keep} before." in again.text


def test_bad_duplicates_are_explained_on_the_card_and_nothing_changes(world, client) -> None:  # noqa: ANN001
    keep, dup = _pair(world)
    other_site = f.customer(world.app, site="south", email="far@example.com")
    csrf = sign_in(client, "operator@example.com")
    for text, message in (("", "Give the duplicate&#39;s id, phone or email."),
                          (str(keep), "That is this customer: pick another one."),
                          ("nobody@example.com", "No customer of this site has this id, phone or email."),
                          (str(other_site), "No customer of this site has this id, phone or email."),
                          ("not a phone", "Not an id, a phone number or an email.")):
        r = client.post(f"/customers/{keep}/merge", data={"csrf_token": csrf, "duplicate": text})
        assert r.status_code == 400 and message in r.text, (text, r.text[-2000:])
        assert 'role="alert"' in r.text
    r = client.post(f"/customers/{keep}/merge", data={"csrf_token": csrf, "duplicate_id": str(other_site)})
    assert r.status_code == 400 and "merge.0" in r.text
    assert client.get(f"/customers/{dup}").status_code == 200
    viewer_csrf = sign_in(client, "viewer@example.com")
    assert "Merge duplicate" not in client.get(f"/customers/{keep}").text
    r = client.post(f"/customers/{keep}/merge", data={"csrf_token": viewer_csrf, "duplicate_id": str(dup)})
    assert r.status_code == 403
    assert client.get(f"/customers/{dup}").status_code == 200


def test_the_merge_form_in_russian(world, client) -> None:  # noqa: ANN001
    keep, dup = _pair(world)
    add_user(world.app, "ru-operator@example.com", "operator", locale="ru")
    csrf = sign_in(client, "ru-operator@example.com")
    assert "Объединить с дублем" in client.get(f"/customers/{keep}").text
    found = client.post(f"/customers/{keep}/merge", data={"csrf_token": csrf, "duplicate": "+79161234567"})
    assert f"Объединить клиента {dup} с клиентом {keep}?" in found.text
    done = client.post(f"/customers/{keep}/merge", data={"csrf_token": csrf, "duplicate_id": str(dup)})
    assert f"Клиент {dup} объединён с этим клиентом." in client.get(done.headers["location"]).text
