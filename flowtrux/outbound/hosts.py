"""The address a URL's host names, in every spelling an IP address can take in a URL.

Resolvers accept IPv4 addresses written in decimal, octal and hex, with fewer than four parts
(`127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`) and, in URL parsers, with a trailing dot. The
guard reads such a host as the address it is, so that it is judged as one rather than sent to DNS.
"""

import ipaddress
import re
import socket

from flowtrux.outbound.networks import IPAddress

_IPV4_SPELLING = re.compile(r"[0-9a-fA-FxX.]+")


def address_of(host: str) -> IPAddress | None:
    """The IP address `host` spells, or None when it is a name. `host` as URLs carry it: IPv6
    without brackets, perhaps with a zone."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    bare = host.removesuffix(".")
    if not bare[:1].isdigit() or not _IPV4_SPELLING.fullmatch(bare):
        return None
    try:  # the C library's reading, the one a resolver would apply
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None
