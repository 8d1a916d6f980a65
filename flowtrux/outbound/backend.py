"""The guard where it cannot be gone around: in the network backend, between a host name and the
socket.

httpcore asks its network backend for a TCP connection to (host, port). This backend resolves the
host once, asks the address policy about every address it got, and connects to a checked address
itself, so no second lookup (which DNS rebinding could answer differently) ever happens. TLS is
started afterwards by httpcore with the URL's host name, so certificates are still verified for
the name, not the address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import attrs
import httpcore
import trio

from flowtrux.outbound.errors import Blocked, OutboundError, Refused
from flowtrux.outbound.hosts import address_of
from flowtrux.outbound.networks import AddressPolicy, IPAddress


@attrs.frozen
class GuardedBackend(httpcore.AsyncNetworkBackend):
    policy: AddressPolicy
    _sockets: httpcore.TrioBackend = attrs.field(factory=httpcore.TrioBackend, init=False)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """A connection to the first checked address of `host` that answers. Raises Blocked when
        any address of `host` is refused (a name with a private address among public ones is
        not trusted either), OutboundError when it does not resolve or none answers."""
        addresses = await _resolve(host, port)
        for address in addresses:
            if self.policy.opens(address, port):
                continue
            if (why := self.policy.refusal(address)) is not None:
                spelled = "" if str(address) == host else f"{host} resolves to {address}: "
                raise Blocked(f"blocked: {spelled}{why}")
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._sockets.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise OutboundError(f"could not connect to {host} port {port}: {failure}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise Blocked("blocked: workflows cannot reach Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address of `host`, once. Cancellable (the lookup's thread is left to finish)."""
    if (address := address_of(host)) is not None:
        return [address]
    try:
        found = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OutboundError(f"could not resolve the host name {host}: {exc}") from None
    except UnicodeError as exc:  # a name no IDNA label can spell
        raise Refused(f"the host name {host} is not valid: {exc}") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses
