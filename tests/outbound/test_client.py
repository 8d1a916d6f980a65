"""What the shared outbound client must never carry from one request to another: cookies an
answer set, and credentials into another origin on a redirect."""

from collections.abc import AsyncIterator

import httpx
import pytest

from flowtrux.outbound.client import Exchange, Outbound, ReadLimit, open_outbound
from flowtrux.outbound.errors import Refused
from flowtrux.outbound.networks import AddressPolicy
from tests.outside.target import Target

LIMIT = ReadLimit(1 << 20, "the test's limit")
CREDENTIALS = {"Authorization": "Bearer b-123456", "X-Api-Key": "k-123456", "Cookie": "s=c-123456"}


@pytest.fixture
async def outbound() -> AsyncIterator[Outbound]:
    async with open_outbound(AddressPolicy.parse("127.0.0.0/8"), "http://127.0.0.1:9/v1") as opened:
        yield opened


async def echoed_headers(outbound: Outbound, url: httpx.URL, **headers: str) -> dict[str, str]:
    response, body = await outbound.fetch(
        outbound.build("GET", url, headers=headers), Exchange(), LIMIT
    )
    assert response.status_code == 200
    found: dict[str, str] = httpx.Response(200, content=body).json()["headers"]
    return found


async def test_a_cookie_one_answer_sets_goes_out_with_no_later_request(
    outbound: Outbound, target: Target
) -> None:
    await outbound.fetch(
        outbound.build("GET", httpx.URL(f"{target.url}/set-cookie")), Exchange(), LIMIT
    )
    assert "cookie" not in await echoed_headers(outbound, httpx.URL(f"{target.url}/json"))


async def test_a_redirect_to_another_origin_carries_no_credential(
    outbound: Outbound, target: Target
) -> None:
    elsewhere = target.url.replace("127.0.0.1", "localhost") + "/json"
    to_elsewhere = httpx.URL(f"{target.url}/redirect", params={"to": elsewhere})
    headers = await echoed_headers(outbound, to_elsewhere, **CREDENTIALS)
    assert not {"authorization", "x-api-key", "cookie"} & headers.keys()

    same_origin = httpx.URL(f"{target.url}/redirect", params={"to": "/json"})
    headers = await echoed_headers(outbound, same_origin, **CREDENTIALS)
    assert headers["x-api-key"] == CREDENTIALS["X-Api-Key"]


async def test_a_value_no_request_can_carry_is_refused_not_an_unexpected_error(
    outbound: Outbound,
) -> None:
    """A lone surrogate, say, in a query value or a header: a clear error, never retried."""
    url = httpx.URL("http://example.com/")
    with pytest.raises(Refused, match="the request cannot be sent") as in_query:
        outbound.build("GET", url, params={"q": "\ud800"})
    with pytest.raises(Refused, match="the request cannot be sent") as in_header:
        outbound.build("GET", url, headers={"X-Q": "\ud800"})
    assert not in_query.value.retryable
    assert not in_header.value.retryable
