"""The messaging API lives under /api/v1/messaging; its old paths under /api/messaging answer the same for one release
(out of the OpenAPI document), and links sent before the move keep working."""

from tests.messaging import helpers as h


def test_the_messaging_api_is_versioned_and_the_old_paths_still_answer(mapp, client):
    h.setup_site(mapp)
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "/api/v1/messaging/templates" in paths and not [p for p in paths if p.startswith("/api/messaging")]
    new = client.post("/api/v1/messaging/templates", json={"site": "shop", "name": "hi", "channel": "sms",
                                                           "body": "Hi"})
    assert new.status_code == 201, new.text
    old = client.post("/api/messaging/templates", json={"site": "shop", "name": "bye", "channel": "sms",
                                                        "body": "Bye"})
    assert old.status_code == 201, old.text
    listed = client.get("/api/v1/messaging/templates", params={"site": "shop"}).json()
    assert client.get("/api/messaging/templates", params={"site": "shop"}).json() == listed
    assert {t["name"] for t in listed} == {"hi", "bye"}
    anonymous = client.get("/api/messaging/templates", params={"site": "shop"}, headers={"X-API-Key": ""})
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == "application/problem+json"
    assert client.patch("/api/messaging/templates").status_code == 405


def test_links_in_messages_point_to_the_new_place_and_old_links_still_work(mapp, client, smtp_server):
    h.setup_site(mapp)
    h.template(mapp, "bonus", "email")
    cascade = h.cascade(mapp, [("email", "bonus", 24)])
    anna = h.customer(mapp, channels=("email",))
    h.start(mapp, cascade, anna)
    h.drain(mapp)
    html = smtp_server.parsed(0).get_body(("html",)).get_content()
    start = html.index("http://testserver/api/v1/messaging/o/")
    pixel = html[start:html.index('.gif"', start) + 4].removeprefix("http://testserver")
    sent_before_the_move = pixel.replace("/api/v1/messaging/", "/api/messaging/")
    r = client.get(sent_before_the_move)
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    (email,) = h.messages(mapp)
    assert email.read_at is not None
