"""The SSRF guard's address policy: which resolved addresses a workflow's requests may reach, why
the others are refused, and how the operator's allow-list opens some of them."""

import ipaddress
import re

import pytest

from flowtrux.outbound.networks import AddressPolicy, InvalidAllowList

NOTHING_ALLOWED = AddressPolicy()


@pytest.mark.parametrize(
    ("address", "word", "network"),
    [
        # IPv4
        ("0.0.0.0", "unspecified", "0.0.0.0/8"),
        ("0.1.2.3", "this network", "0.0.0.0/8"),
        ("10.0.0.1", "private", "10.0.0.0/8"),
        ("10.255.255.255", "private", "10.0.0.0/8"),
        ("172.16.0.1", "private", "172.16.0.0/12"),
        ("172.31.255.254", "private", "172.16.0.0/12"),
        ("192.168.1.1", "private", "192.168.0.0/16"),
        ("100.64.0.1", "CGNAT", "100.64.0.0/10"),
        ("100.127.255.254", "shared", "100.64.0.0/10"),
        ("127.0.0.1", "loopback", "127.0.0.0/8"),
        ("127.255.255.254", "loopback", "127.0.0.0/8"),
        ("169.254.0.1", "link-local", "169.254.0.0/16"),
        ("169.254.169.254", "metadata", "169.254.169.254/32"),
        ("169.254.170.2", "metadata", "169.254.170.2/32"),
        ("100.100.100.200", "metadata", "100.100.100.200/32"),
        ("192.0.0.192", "metadata", "192.0.0.192/32"),
        ("192.0.0.8", "IETF", "192.0.0.0/24"),
        ("192.0.2.1", "documentation", "192.0.2.0/24"),
        ("198.51.100.7", "documentation", "198.51.100.0/24"),
        ("203.0.113.200", "documentation", "203.0.113.0/24"),
        ("192.88.99.1", "6to4 relay", "192.88.99.0/24"),
        ("198.18.0.1", "benchmarking", "198.18.0.0/15"),
        ("198.19.255.255", "benchmarking", "198.18.0.0/15"),
        ("224.0.0.1", "multicast", "224.0.0.0/4"),
        ("239.255.255.250", "multicast", "224.0.0.0/4"),
        ("240.0.0.1", "reserved", "240.0.0.0/4"),
        ("255.255.255.254", "reserved", "240.0.0.0/4"),
        ("255.255.255.255", "broadcast", "255.255.255.255/32"),
        # IPv6
        ("::", "unspecified", "::/128"),
        ("::1", "loopback", "::1/128"),
        ("::10.0.0.1", "IPv4-compatible", "::/96"),
        ("::8.8.8.8", "IPv4-compatible", "::/96"),
        ("64:ff9b:1::1", "local-use NAT64", "64:ff9b:1::/48"),
        ("100::1", "discard-only", "100::/64"),
        ("2001::1", "Teredo", "2001::/32"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo", "2001::/32"),
        ("2001:2::1", "benchmarking", "2001:2::/48"),
        ("2001:1::1", "IETF", "2001::/23"),
        ("2001:db8::1", "documentation", "2001:db8::/32"),
        ("3fff::1", "documentation", "3fff::/20"),
        ("fc00::1", "private", "fc00::/7"),
        ("fd12:3456::1", "private", "fc00::/7"),
        ("fd00:ec2::254", "metadata", "fd00:ec2::254/128"),
        ("fe80::1", "link-local", "fe80::/10"),
        ("fe80::1%eth0", "link-local", "fe80::/10"),
        ("fec0::1", "site-local", "fec0::/10"),
        ("ff02::1", "multicast", "ff00::/8"),
        ("ff05::2", "multicast", "ff00::/8"),
        ("1000::1", "reserved", "::/3"),
        ("::ffff:0:a00:1", "reserved", "::/3"),  # IPv4-translated (SIIT), not IPv4-mapped
        ("4000::1", "reserved", "4000::/2"),
        ("8000::1", "reserved", "8000::/1"),
        # IPv6 forms of a blocked IPv4 address
        ("::ffff:127.0.0.1", "IPv4-mapped", "127.0.0.0/8"),
        ("::ffff:10.0.0.1", "IPv4-mapped", "10.0.0.0/8"),
        ("::ffff:169.254.169.254", "metadata", "169.254.169.254/32"),
        ("::ffff:0.0.0.0", "unspecified", "0.0.0.0/8"),
        ("::ffff:255.255.255.255", "broadcast", "255.255.255.255/32"),
        ("64:ff9b::7f00:1", "NAT64", "127.0.0.0/8"),
        ("64:ff9b::a9fe:a9fe", "metadata", "169.254.169.254/32"),
        ("64:ff9b::c0a8:101", "NAT64", "192.168.0.0/16"),
        ("2002:7f00:1::1", "6to4", "127.0.0.0/8"),
        ("2002:c0a8:101::1", "6to4", "192.168.0.0/16"),
        ("2002:a9fe:a9fe::", "metadata", "169.254.169.254/32"),
    ],
)
def test_blocked_addresses_are_refused_with_the_reason_and_network(
    address: str, word: str, network: str
) -> None:
    why = NOTHING_ALLOWED.refusal(ipaddress.ip_address(address))
    assert why is not None
    assert word in why
    assert why.endswith(f"({network})")


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "9.9.9.9",
        "93.184.216.34",
        "11.0.0.1",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450:4001::1",
        "2001:200::1",
        "2001:db9::1",
        "3fff:1000::1",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:0808:0808::1",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert NOTHING_ALLOWED.refusal(ipaddress.ip_address(address)) is None


def test_a_refusal_is_one_sentence_naming_the_address_the_reason_and_the_network() -> None:
    def refusal(address: str) -> str | None:
        return NOTHING_ALLOWED.refusal(ipaddress.ip_address(address))

    assert refusal("127.0.0.1") == "127.0.0.1 is a loopback address (127.0.0.0/8)"
    assert refusal("169.254.169.254") == (
        "169.254.169.254 is a cloud metadata address (169.254.169.254/32)"
    )
    mapped = ipaddress.ip_address("::ffff:10.0.0.1")  # written ::ffff:a00:1 before Python 3.13
    assert refusal("::ffff:10.0.0.1") == (
        f"{mapped} is an IPv4-mapped form of 10.0.0.1, a private address (10.0.0.0/8)"
    )


def test_a_scoped_address_is_judged_without_its_zone() -> None:
    scoped = ipaddress.IPv6Address("fe80::1%eth0")
    assert NOTHING_ALLOWED.refusal(scoped) == NOTHING_ALLOWED.refusal(
        ipaddress.IPv6Address("fe80::1")
    )
    assert AddressPolicy.parse("fe80::1").refusal(scoped) is None
    assert AddressPolicy.parse("fe80::/10").refusal(ipaddress.IPv6Address("fe80::2%1")) is None


def test_an_allowed_address_opens_it_and_its_ipv6_forms_only() -> None:
    policy = AddressPolicy.parse("127.0.0.1/32")
    for opened in ["127.0.0.1", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::"]:
        assert policy.refusal(ipaddress.ip_address(opened)) is None, opened
    for closed in ["127.0.0.2", "::ffff:127.0.0.2", "::1", "10.0.0.1"]:
        assert policy.refusal(ipaddress.ip_address(closed)) is not None, closed


def test_an_allowed_network_wins_over_every_reason_to_block() -> None:
    policy = AddressPolicy.parse("10.0.0.0/8, 169.254.169.254, fc00::/7, ::ffff:0:0/96")
    for opened in ["10.1.2.3", "169.254.169.254", "fd00:ec2::254", "::ffff:192.168.0.1"]:
        assert policy.refusal(ipaddress.ip_address(opened)) is None, opened
    for closed in ["172.16.0.1", "169.254.170.2", "fe80::1", "64:ff9b::c0a8:1"]:
        assert policy.refusal(ipaddress.ip_address(closed)) is not None, closed


@pytest.mark.parametrize(
    ("cidrs", "allowed"),
    [
        ("", ()),
        ("   ", ()),
        ("10.0.0.0/8", (ipaddress.IPv4Network("10.0.0.0/8"),)),
        (
            "10.0.0.0/8, ::1",
            (ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv6Network("::1/128")),
        ),
        (
            " 192.168.1.7 ,fd00::/8,",
            (ipaddress.IPv4Network("192.168.1.7/32"), ipaddress.IPv6Network("fd00::/8")),
        ),
    ],
)
def test_the_allow_list_parses_cidrs_and_single_addresses(
    cidrs: str, allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> None:
    assert AddressPolicy.parse(cidrs) == AddressPolicy(allowed)


@pytest.mark.parametrize(
    ("cidrs", "entry", "expected"),
    [
        ("10.0.0.0/33", "10.0.0.0/33", "expected a CIDR such as 10.0.0.0/8"),
        ("banana", "banana", "expected a CIDR such as 10.0.0.0/8"),
        ("10.0.0.0/8, nope", "nope", "expected a CIDR such as 10.0.0.0/8"),
        ("10.0.0.0/8; ::1", "10.0.0.0/8; ::1", "expected a CIDR such as 10.0.0.0/8"),
        ("::1/129", "::1/129", "expected a CIDR such as 10.0.0.0/8"),
        ("10.0.0.1/8", "10.0.0.1/8", "write 10.0.0.0/8 for the whole network"),
        ("fd00::1/8", "fd00::1/8", "write fd00::/8 for the whole network"),
    ],
)
def test_a_bad_allow_list_entry_is_named_with_what_is_expected(
    cidrs: str, entry: str, expected: str
) -> None:
    with pytest.raises(InvalidAllowList, match=re.escape(f"{entry!r}")) as raised:
        AddressPolicy.parse(cidrs)
    assert expected in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_a_single_service_opens_its_port_alone() -> None:
    policy = AddressPolicy.parse("127.0.0.1:8001, [::1]:8002, 10.0.0.0/8")
    loopback, v6 = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")
    assert policy.opens(loopback, 8001)
    assert not policy.opens(loopback, 8002)
    assert policy.opens(v6, 8002)
    assert policy.refusal(loopback) is not None  # the address itself stays closed
    assert policy.refusal(ipaddress.ip_address("10.1.2.3")) is None


@pytest.mark.parametrize("entry", ["127.0.0.1:0", "127.0.0.1:70000", "localhost:80", "[::1]:x"])
def test_a_bad_service_is_refused_with_what_to_write(entry: str) -> None:
    with pytest.raises(InvalidAllowList, match=r"port|service"):
        AddressPolicy.parse(entry)
