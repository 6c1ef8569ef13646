"""In-memory fakes of the small protocols side effects hide behind (wired through `bootstrap`)."""

from __future__ import annotations

import socket


class FakeResolver:
    """DNS in memory (`retento.core.http.Resolver`): `hosts` maps a name to its addresses; a test changes an
    answer by assigning to it. Every lookup is recorded in `lookups`; unknown names do not resolve."""

    def __init__(self, hosts: dict[str, list[str]] | None = None) -> None:
        self.hosts = dict(hosts or {})
        self.lookups: list[str] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.hosts:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} not known")
        return list(self.hosts[host])
