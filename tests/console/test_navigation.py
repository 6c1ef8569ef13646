"""The navigation marks where the user is: the main menu's area (Admin on every admin page) and the admin page
among the admin pages, also below it (a queue's dead letters are under Work queues)."""

from __future__ import annotations

import re

from tests.console.conftest import sign_in


def current(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", m).strip() for m in re.findall(r'aria-current="page">(.*?)</a>', html, re.S)]


def test_the_current_admin_page_is_marked(client, world) -> None:  # noqa: ANN001
    sign_in(client, "admin@example.com")
    assert current(client.get("/admin/users").text) == ["Admin", "Users"]
    assert current(client.get("/admin/webhooks").text) == ["Admin", "Outgoing webhooks"]
    assert current(client.get("/admin/work/webhooks").text) == ["Admin", "Work queues"]
    assert current(client.get("/admin/sites/north").text) == ["Admin", "Sites"]
    assert current(client.get("/loyalty/members").text) == ["Loyalty", "Members"]
    assert current(client.get("/customers").text) == ["Customers"]
