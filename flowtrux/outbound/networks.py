"""Which IP addresses a workflow's HTTP requests may reach: the address policy of the SSRF guard.

The outbound client resolves a host name once and asks `AddressPolicy.refusal` about each address
before it connects. Addresses in the operator's allow-list pass; so does the public internet.
Everything else named in the table below (loopback, private, link-local, cloud metadata, ...) is
refused with a sentence saying why. The table is written out rather than taken from `ipaddress`'s
is_private/is_global, whose answers change between Python versions.
"""

import ipaddress
import re

import attrs

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_BLOCKED: tuple[tuple[str, str], ...] = (
    # Cloud metadata services, which hand out credentials to whoever asks.
    ("169.254.169.254/32", "a cloud metadata address"),  # AWS, GCP, Azure, OpenStack, ...
    ("169.254.170.2/32", "a cloud metadata address"),  # AWS ECS task credentials
    ("100.100.100.200/32", "a cloud metadata address"),  # Alibaba Cloud
    ("192.0.0.192/32", "a cloud metadata address"),  # Oracle Cloud
    ("fd00:ec2::254/128", "a cloud metadata address"),  # AWS, over IPv6
    # IPv4
    ("0.0.0.0/8", 'an unspecified ("this network") address'),
    ("10.0.0.0/8", "a private address"),
    ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"),
    ("100.64.0.0/10", "a CGNAT shared address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("192.0.0.0/24", "an IETF protocol assignment address"),
    ("192.0.2.0/24", "a documentation address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay anycast address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("255.255.255.255/32", "the broadcast address"),
    # IPv6 (IPv4-mapped, NAT64 and 6to4 addresses are judged by the IPv4 address they embed)
    ("::/128", "the unspecified address"),
    ("::1/128", "the loopback address"),
    ("::/96", "a deprecated IPv4-compatible address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo address"),
    ("2001:2::/48", "a benchmarking address"),
    ("2001::/23", "an IETF protocol assignment address"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("fc00::/7", "a private (unique local) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a deprecated site-local address"),
    ("ff00::/8", "a multicast address"),
    # The rest of IPv6 outside global unicast 2000::/3.
    ("::/3", "a reserved address outside global unicast"),
    ("4000::/2", "a reserved address outside global unicast"),
    ("8000::/1", "a reserved address outside global unicast"),
)
# An address is judged by the most specific network that holds it: 169.254.169.254 is metadata
# before it is link-local, ::1 loopback before it is IPv4-compatible, 2001::1 Teredo before IETF.
_MOST_SPECIFIC_FIRST = sorted(
    ((ipaddress.ip_network(cidr), reason) for cidr, reason in _BLOCKED),
    key=lambda row: row[0].prefixlen,
    reverse=True,
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class InvalidAllowList(ValueError):
    pass


Endpoint = tuple[IPAddress, int]
_ENDPOINT = re.compile(r"\[?(?P<address>[^\[\]]+?)\]?:(?P<port>[0-9]{1,5})")


@attrs.frozen
class AddressPolicy:
    allowed: tuple[IPNetwork, ...] = ()  # networks the operator opened explicitly
    endpoints: frozenset[Endpoint] = frozenset()  # single services (address and port) opened

    @classmethod
    def parse(cls, cidrs: str) -> "AddressPolicy":
        """From FLOWTRUX_HTTP_ALLOW_CIDRS: comma-separated CIDRs, single addresses or single
        services (`127.0.0.1:8001`, `[::1]:8001`), spaces allowed; an empty string allows
        nothing beyond the public internet.

        Raises InvalidAllowList."""
        entries = [entry.strip() for entry in cidrs.split(",") if entry.strip()]
        endpoints = [entry for entry in entries if _is_endpoint(entry)]
        networks = [_network(entry) for entry in entries if entry not in endpoints]
        return cls(tuple(networks), frozenset(map(_endpoint, endpoints)))

    def opens(self, address: IPAddress, port: int) -> bool:
        """Whether the operator opened this one service."""
        return (address, port) in self.endpoints

    def refusal(self, address: IPAddress) -> str | None:
        """None when a connection to `address` may be made; else one sentence saying why it is
        blocked, e.g. "127.0.0.1 is a loopback address (127.0.0.0/8)" or
        "169.254.169.254 is a cloud metadata address (169.254.169.254/32)" or
        "::ffff:10.0.0.1 is an IPv4-mapped form of 10.0.0.1, a private address (10.0.0.0/8)"."""
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            return self.refusal(ipaddress.IPv6Address(int(address)))  # judged without its %zone
        if self._allows(address):
            return None
        embedded = _embedded(address)
        if embedded is None:
            blocked = _blocked(address)
            return None if blocked is None else f"{address} is {blocked}"
        form, ipv4 = embedded
        if self._allows(ipv4):
            return None
        blocked = _blocked(ipv4)
        return None if blocked is None else f"{address} is {form} of {ipv4}, {blocked}"

    def _allows(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allowed)


def _is_endpoint(entry: str) -> bool:
    """`host:port` or `[v6]:port`, not a bare IPv6 address (whose last group may look like a
    port) nor a CIDR."""
    return "/" not in entry and (entry.startswith("[") or entry.count(":") == 1)


def _endpoint(entry: str) -> Endpoint:
    found = _ENDPOINT.fullmatch(entry)
    try:
        if found is None:
            raise ValueError(entry)
        address, port = ipaddress.ip_address(found["address"]), int(found["port"])
    except ValueError:
        raise InvalidAllowList(
            f"{entry!r} is not a service: expected an address and a port such as"
            " 127.0.0.1:8001 or [::1]:8001"
        ) from None
    if not 0 < port < 65536:
        raise InvalidAllowList(f"{entry!r} names port {port}: a port is 1 to 65535")
    return address, port


def _network(entry: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(entry)
    except ValueError:
        pass
    try:
        interface = ipaddress.ip_interface(entry)
    except ValueError:
        raise InvalidAllowList(
            f"{entry!r} is not an IP network: expected a CIDR such as 10.0.0.0/8"
            " or a single address such as 10.0.0.1"
        ) from None
    raise InvalidAllowList(
        f"{entry!r} has host bits set: write {interface.network} for the whole network,"
        f" or {interface.ip} alone for the one address"
    )


def _embedded(address: IPAddress) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address inside an IPv4-mapped, NAT64 or 6to4 address, and which form it is."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped form", address.ipv4_mapped
    if address in _NAT64:
        return "a NAT64 form", ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address.sixtofour is not None:
        return "a 6to4 form", address.sixtofour
    return None


def _blocked(address: IPAddress) -> str | None:
    """Why `address` is blocked, with the network that blocks it; None for a public address."""
    for network, reason in _MOST_SPECIFIC_FIRST:
        if address in network:
            return f"{reason} ({network})"
    return None
