"""The SSRF address policy (pure): which hosts and addresses outgoing requests may reach.

Outgoing requests (webhook deliveries, the trigger `webhook` action) go only to public addresses. Refused:
loopback, private (RFC 1918, fc00::/7), link-local (169.254/16, fe80::/10), shared CGNAT (100.64/10),
multicast, unspecified, reserved and documentation ranges, every IPv6 address outside global unicast
(2000::/3), IPv6 forms that embed an IPv4 address (IPv4-mapped, 6to4, NAT64) when that address is refused,
and the names of cloud metadata services and `localhost`. The allow-list (setting `outgoing_allow`) names
hosts and networks that are reachable all the same, e.g. a receiver on the local network.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

LOOPBACK, PRIVATE, LINK_LOCAL = "a loopback address", "a private address", "a link-local address"
SHARED, MULTICAST, UNSPECIFIED = "a shared (CGNAT) address", "a multicast address", "an unspecified address"
RESERVED = "a reserved address"

_V4: list[tuple[IPv4Network, str]] = [(IPv4Network(n), why) for n, why in [
    ("0.0.0.0/8", UNSPECIFIED), ("10.0.0.0/8", PRIVATE), ("100.64.0.0/10", SHARED), ("127.0.0.0/8", LOOPBACK),
    ("169.254.0.0/16", LINK_LOCAL), ("172.16.0.0/12", PRIVATE), ("192.0.0.0/24", RESERVED),
    ("192.0.2.0/24", RESERVED), ("192.88.99.0/24", RESERVED), ("192.168.0.0/16", PRIVATE),
    ("198.18.0.0/15", RESERVED), ("198.51.100.0/24", RESERVED), ("203.0.113.0/24", RESERVED),
    ("224.0.0.0/4", MULTICAST), ("240.0.0.0/4", RESERVED)]]
_V6: list[tuple[IPv6Network, str]] = [(IPv6Network(n), why) for n, why in [
    ("::/128", UNSPECIFIED), ("::1/128", LOOPBACK), ("fe80::/10", LINK_LOCAL), ("fec0::/10", PRIVATE),
    ("fc00::/7", PRIVATE), ("ff00::/8", MULTICAST), ("64:ff9b:1::/48", PRIVATE), ("2001::/23", RESERVED),
    ("2001:db8::/32", RESERVED), ("3fff::/20", RESERVED)]]
_GLOBAL_UNICAST = IPv6Network("2000::/3")
_NAT64 = IPv6Network("64:ff9b::/96")

# Names of cloud metadata services (their addresses are refused as link-local / private / CGNAT anyway).
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal"})


def embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped (::ffff:a.b.c.d), 6to4 (2002::/16), NAT64."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def address_refusal(ip: Address) -> str | None:
    """Why an address may not be connected to (`"a loopback address"`, ...), or None for a public one."""
    if isinstance(ip, IPv6Address):
        v4 = embedded_ipv4(ip)
        if v4 is not None:
            return address_refusal(v4)
    table: list = _V4 if isinstance(ip, IPv4Address) else _V6
    for net, why in table:
        if ip in net:
            return why
    if isinstance(ip, IPv6Address) and ip not in _GLOBAL_UNICAST:
        return RESERVED
    return None


def normal_host(host: str) -> str:
    """A host name compared as DNS does: lower case, without the root's trailing dot, IPv6 without brackets."""
    return host.strip().strip("[]").rstrip(".").lower()


def literal(host: str) -> Address | None:
    """The address a host is written as (`10.0.0.1`, `[::1]`), or None for a name."""
    try:
        return ip_address(normal_host(host))
    except ValueError:
        return None


def host_refusal(host: str) -> str | None:
    """Why a host name is refused whatever it resolves to: `localhost` and cloud metadata names."""
    name = normal_host(host)
    if name == "localhost" or name.endswith(".localhost"):
        return "a loopback name"
    if name in METADATA_HOSTS:
        return "a cloud metadata name"
    return None


@dataclass(frozen=True)
class AllowList:
    """Hosts and networks outgoing requests may reach although the policy refuses them."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowList:
        """Comma-separated host names, addresses and networks (CIDR): `hooks.lan, 127.0.0.1, 10.1.0.0/16`."""
        hosts, networks = set(), []
        for entry in (e.strip() for e in text.split(",")):
            if not entry:
                continue
            try:
                networks.append(ip_network(normal_host(entry), strict=False))
                continue
            except ValueError:
                pass
            name = normal_host(entry)
            if not name or not all(part and part.replace("-", "").replace("_", "").isalnum() and part.isascii()
                                   for part in name.split(".")):
                raise ValueError(f"{entry!r} is neither a host name nor an address or network (CIDR)")
            hosts.add(name)
        return cls(frozenset(hosts), tuple(networks))

    def with_hosts(self, hosts: Iterable[str]) -> AllowList:
        """This list and `hosts` (names or addresses as URLs write them): e.g. the hosts of the provider URLs an
        administrator configured, allowed for the requests to those providers only."""
        return AllowList(self.hosts | {normal_host(h) for h in hosts if h}, self.networks)

    def names(self, host: str) -> bool:
        return normal_host(host) in self.hosts

    def contains(self, ip: Address) -> bool:
        v4 = embedded_ipv4(ip) if isinstance(ip, IPv6Address) else None
        return any(ip in net or (v4 is not None and v4 in net) for net in self.networks)


def refusal(host: str, addresses: list[Address], allow: AllowList) -> str | None:
    """The decision for one connection: why `host`, resolved to `addresses`, may not be reached, or None.
    Every address must pass: a name that resolves to one public and one private address is refused."""
    if allow.names(host):
        return None
    why = host_refusal(host)
    if why is not None:
        return f"{normal_host(host)} is {why}"
    for ip in addresses:
        why = address_refusal(ip)
        if why is not None and not allow.contains(ip):
            shown = normal_host(host)
            return f"{ip} is {why}" if shown == str(ip) else f"{shown} resolves to {ip}, {why}"
    return None
