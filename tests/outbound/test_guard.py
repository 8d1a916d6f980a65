"""The SSRF guard against every spelling of a refused address, over real sockets.

Each URL (49 of them, and 6 redirects) names the port of a listener on every local address: a
request the guard let through would reach it. None may, each is refused in well under 2 s with
an error saying it was blocked and why, and the same URLs pass once the operator opens their
network.
"""

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from flowtrux.outbound.client import Exchange, Outbound, ReadLimit, open_outbound
from flowtrux.outbound.errors import Blocked, Refused
from flowtrux.outbound.networks import AddressPolicy
from tests.outbound.listener import Listener, listening
from tests.outside.target import Target

LLM = "http://127.0.0.1:9/v1"
LIMIT = ReadLimit(1 << 20, "the test's limit")
P = "{port}"  # the listener's port, filled in by each test

BLOCKED = [
    # loopback, in every spelling a URL or a resolver accepts
    (f"http://127.0.0.1:{P}/", "loopback"),
    (f"http://127.1:{P}/", "loopback"),
    (f"http://2130706433:{P}/", "loopback"),
    (f"http://0x7f.0.0.1:{P}/", "loopback"),
    (f"http://0177.0.0.1:{P}/", "loopback"),
    (f"http://0x7f000001:{P}/", "loopback"),
    (f"http://017700000001:{P}/", "loopback"),
    (f"http://127.0.0.1.:{P}/", "loopback"),
    (f"http://127.0.0.2:{P}/", "loopback"),
    (f"http://[::1]:{P}/", "loopback"),
    (f"http://[0:0:0:0:0:0:0:1]:{P}/", "loopback"),
    (f"http://[::ffff:127.0.0.1]:{P}/", "IPv4-mapped"),
    (f"http://[::ffff:7f00:1]:{P}/", "IPv4-mapped"),
    (f"http://[::127.0.0.1]:{P}/", "IPv4-compatible"),
    (f"http://[64:ff9b::7f00:1]:{P}/", "NAT64"),
    (f"http://[2002:7f00:1::]:{P}/", "6to4"),
    (f"http://localhost:{P}/", "loopback"),
    (f"http://LOCALHOST:{P}/", "loopback"),
    (f"http://user:pass@127.0.0.1:{P}/", "loopback"),
    (f"http://example.com@127.0.0.1:{P}/", "loopback"),
    (f"http://127.0.0.1:{P}#@example.com/", "loopback"),
    (f"https://127.0.0.1:{P}/", "loopback"),
    # unspecified: on Linux a connection to it reaches this machine
    (f"http://0.0.0.0:{P}/", "unspecified"),
    (f"http://0:{P}/", "unspecified"),
    (f"http://[::]:{P}/", "unspecified"),
    # cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("http://[64:ff9b::a9fe:a9fe]/", "metadata"),
    ("http://0xa9fea9fe/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://100.100.100.200/", "metadata"),
    ("http://192.0.0.192/", "metadata"),
    # private, CGNAT, link-local
    (f"http://10.0.0.1:{P}/", "private"),
    ("http://0x0a.0.0.1/", "private"),
    ("http://[::ffff:a00:1]/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    (f"http://[fd00::1]:{P}/", "private"),
    (f"http://100.64.0.1:{P}/", "CGNAT"),
    ("http://169.254.1.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    # benchmarking, documentation, multicast, reserved, broadcast, Teredo
    ("http://198.18.0.1/", "benchmarking"),
    ("http://[2001:2::1]/", "benchmarking"),
    ("http://192.0.2.1/", "documentation"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://[2001::1]/", "Teredo"),
]


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    async with listening() as listener:
        yield listener


@pytest.fixture
async def guarded() -> AsyncIterator[Outbound]:
    async with open_outbound(AddressPolicy(), LLM) as outbound:
        yield outbound


async def get(outbound: Outbound, url: str) -> httpx.Response:
    request = outbound.build("GET", outbound.url(url))
    response, _ = await outbound.fetch(request, Exchange(), LIMIT)
    return response


@pytest.mark.parametrize(("url", "why"), BLOCKED)
async def test_a_refused_address_is_blocked_before_any_connection(
    guarded: Outbound, listener: Listener, url: str, why: str
) -> None:
    url = url.format(port=listener.port)
    started = trio.current_time()
    with pytest.raises(Blocked) as blocked:
        await get(guarded, url)
    assert trio.current_time() - started < 2
    assert str(blocked.value).startswith("blocked: ")
    assert why in str(blocked.value)
    assert not blocked.value.retryable
    assert listener.connections == 0


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/", "gopher://127.0.0.1:70/", "//a/b"]
)
async def test_only_http_and_https_are_sent(guarded: Outbound, url: str) -> None:
    with pytest.raises(Refused, match="only http and https"):
        await get(guarded, url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://127.1:{port}/",
        "http://0x7f.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
)
async def test_the_operator_can_open_a_network(listener: Listener, url: str) -> None:
    async with open_outbound(AddressPolicy.parse("127.0.0.0/8"), LLM) as opened:
        response = await get(opened, url.format(port=listener.port))
    assert response.status_code == 200
    assert listener.connections == 1


async def test_an_opened_network_opens_nothing_else(listener: Listener) -> None:
    async with open_outbound(AddressPolicy.parse("127.0.0.1/32"), LLM) as opened:
        with pytest.raises(Blocked, match="loopback"):
            await get(opened, f"http://127.0.0.2:{listener.port}/")
        with pytest.raises(Blocked, match="loopback"):
            await get(opened, f"http://[::1]:{listener.port}/")
    assert listener.connections == 0


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.2:{port}/",
        "http://[::1]:{port}/",
        "http://0x7f.0.0.2:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1:{port}/",
        "file:///etc/passwd",
    ],
)
async def test_every_redirect_is_checked_again(
    target: Target, listener: Listener, location: str
) -> None:
    """The target is on an opened address; where it redirects to is not."""
    to = location.format(port=listener.port)
    async with open_outbound(AddressPolicy.parse("127.0.0.1/32"), LLM) as opened:
        exchange = Exchange()
        request = opened.build("GET", httpx.URL(f"{target.url}/redirect", params={"to": to}))
        with pytest.raises((Blocked, Refused)):
            await opened.fetch(request, exchange, LIMIT)
    assert listener.connections == 0
    assert [hop.status for hop in exchange.requests] == [302]


async def test_the_operator_can_open_one_service_and_no_other_port(listener: Listener) -> None:
    async with listening() as other:
        policy = AddressPolicy.parse(f"127.0.0.1:{listener.port}")
        async with open_outbound(policy, LLM) as opened:
            assert (await get(opened, f"http://127.0.0.1:{listener.port}/")).status_code == 200
            with pytest.raises(Blocked, match="loopback"):
                await get(opened, f"http://127.0.0.1:{other.port}/")
            with pytest.raises(Blocked, match="loopback"):  # the same port, another spelling
                await get(opened, f"http://127.1:{other.port}/")
    assert (listener.connections, other.connections) == (1, 0)
