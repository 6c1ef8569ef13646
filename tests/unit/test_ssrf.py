"""The SSRF address policy (pure): which hosts and addresses outgoing requests may reach."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

import pytest
from hypothesis import given, strategies as st

from retento.core.ssrf import AllowList, address_refusal, embedded_ipv4, host_refusal, refusal

REFUSED = {
    "127.0.0.1": "a loopback address", "127.255.255.254": "a loopback address", "::1": "a loopback address",
    "10.0.0.1": "a private address", "172.16.5.4": "a private address", "172.31.255.255": "a private address",
    "192.168.1.1": "a private address", "fc00::1": "a private address", "fd00:ec2::254": "a private address",
    "169.254.169.254": "a link-local address", "fe80::1": "a link-local address",
    "100.64.0.1": "a shared (CGNAT) address", "100.100.100.200": "a shared (CGNAT) address",
    "224.0.0.1": "a multicast address", "239.255.255.250": "a multicast address", "ff02::1": "a multicast address",
    "0.0.0.0": "an unspecified address", "::": "an unspecified address", "0.1.2.3": "an unspecified address",
    "255.255.255.255": "a reserved address", "240.0.0.1": "a reserved address", "192.0.2.10": "a reserved address",
    "198.18.0.1": "a reserved address", "2001:db8::1": "a reserved address", "::127.0.0.1": "a reserved address",
    "100::1": "a reserved address", "4000::1": "a reserved address",
    # IPv6 forms of refused IPv4 addresses are judged as those
    "::ffff:127.0.0.1": "a loopback address", "::ffff:169.254.169.254": "a link-local address",
    "::ffff:10.1.2.3": "a private address", "2002:7f00:1::": "a loopback address",
    "2002:a9fe:a9fe::1": "a link-local address", "64:ff9b::a00:1": "a private address",
}
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "192.169.0.1", "11.0.0.1",
          "2606:4700:4700::1111", "2a00:1450:4010:c0e::64", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"]


@pytest.mark.parametrize("text,reason", sorted(REFUSED.items()))
def test_refused_addresses_name_their_kind(text, reason):
    assert address_refusal(ip_address(text)) == reason


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_pass(text):
    assert address_refusal(ip_address(text)) is None


v4 = st.integers(0, 2**32 - 1).map(IPv4Address)
v6 = st.integers(0, 2**128 - 1).map(IPv6Address)


@given(v4)
def test_an_ipv6_form_of_an_ipv4_address_gets_the_same_decision(ip):
    n = int(ip)
    for form in (IPv6Address((0xFFFF << 32) | n), IPv6Address((0x2002 << 112) | (n << 80)),
                 IPv6Address((0x64FF9B << 96) | n)):
        assert embedded_ipv4(form) == ip
        assert address_refusal(form) == address_refusal(ip)


@given(v4)
def test_every_ipv4_address_python_calls_not_global_is_refused(ip):
    if not ip.is_global or ip.is_multicast:
        assert address_refusal(ip) is not None


@given(v6)
def test_only_global_unicast_ipv6_passes(ip):
    if address_refusal(ip) is None and embedded_ipv4(ip) is None:
        assert ip.is_global and not ip.is_multicast and not ip.is_link_local and not ip.is_site_local
        assert int(ip) >> 125 == 1  # 2000::/3


@given(st.sampled_from(["10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
                        "100.64.0.0/10", "224.0.0.0/4", "240.0.0.0/4", "0.0.0.0/8"]), st.integers(0, 2**32 - 1))
def test_every_address_of_a_refused_network_is_refused_unless_allowed(cidr, offset):
    net = IPv4Network(cidr)
    ip = net[offset % net.num_addresses]
    assert address_refusal(ip) is not None
    assert refusal("x.test", [ip], AllowList()) is not None
    assert refusal("x.test", [ip], AllowList.parse(cidr)) is None
    assert refusal("x.test", [ip], AllowList.parse("x.test")) is None


def test_one_refused_address_among_public_ones_refuses_the_host():
    public, private = ip_address("93.184.216.34"), ip_address("10.0.0.7")
    assert refusal("hooks.shop.test", [public], AllowList()) is None
    assert refusal("hooks.shop.test", [public, private], AllowList()) == (
        "hooks.shop.test resolves to 10.0.0.7, a private address")
    assert refusal("10.0.0.7", [private], AllowList()) == "10.0.0.7 is a private address"


def test_names_refused_whatever_they_resolve_to():
    for name in ("localhost", "LOCALHOST.", "api.localhost", "metadata.google.internal", "metadata",
                 "instance-data.ec2.internal"):
        assert host_refusal(name) is not None
        assert refusal(name, [ip_address("93.184.216.34")], AllowList()) is not None
    assert refusal("localhost", [ip_address("127.0.0.1")], AllowList.parse("127.0.0.1")) == (
        "localhost is a loopback name")
    assert refusal("Localhost", [ip_address("127.0.0.1")], AllowList.parse("localhost")) is None
    assert host_refusal("metadata.example.com") is None


def test_allow_list_parsing():
    allow = AllowList.parse(" hooks.LAN., 127.0.0.1 , 10.1.0.0/16,[::1],, fd00::/8 ")
    assert allow.hosts == {"hooks.lan"}
    assert [str(n) for n in allow.networks] == ["127.0.0.1/32", "10.1.0.0/16", "::1/128", "fd00::/8"]
    assert allow.names("HOOKS.lan") and not allow.names("other.lan")
    assert allow.contains(ip_address("10.1.200.3")) and not allow.contains(ip_address("10.2.0.1"))
    assert allow.contains(ip_address("::ffff:127.0.0.1"))  # the IPv4-mapped form of an allowed address
    assert AllowList.parse("") == AllowList()
    for bad in ("http://x.test", "a b", "x..y", "10.0.0.0/33", "héllo.test"):
        with pytest.raises(ValueError, match="neither a host name"):
            AllowList.parse(bad)
