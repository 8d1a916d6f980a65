"""The servers outside FlowTrux do what tests/outside/target.py and fake_llm.py say, seen from a
real client (httpx) over real sockets."""

import json
import zlib
from functools import partial
from typing import Any

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse

from tests.outside.fake_llm import Answer, Call, FakeLLM, ToolCalls, invalid_api_key
from tests.outside.target import BOMB_SIZE, Target

PROMPT = [{"role": "user", "content": "What is the weather in Paris?"}]


async def test_the_target_echoes_and_records_a_request(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url) as client:
        response = await client.post("/json?rid=a&x=1", json={"k": [1]}, headers={"X-Key": "v"})

    echo = response.json()
    assert (echo["method"], echo["path"], echo["query"]) == (
        "POST",
        "/json",
        {"rid": "a", "x": "1"},
    )
    assert echo["body"] == {"k": [1]}
    assert echo["headers"]["x-key"] == "v"
    [received] = target.requests
    assert (received.method, received.path, received.query) == ("POST", "/json", "rid=a&x=1")
    assert json.loads(received.body) == {"k": [1]}
    assert received.headers["x-key"] == "v"
    assert received.at <= trio.current_time()


async def test_slow_records_the_client_leaving_at_once(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url) as client, trio.open_nursery() as nursery:
        nursery.start_soon(partial(client.get, "/slow", params={"ms": 10_000, "rid": "s"}))
        with trio.fail_after(5):  # the client leaves once its request has arrived
            while not target.requests:  # noqa: ASYNC110 (what the target has received)
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
        left_at = trio.current_time()

    assert await target.wait_disconnect("s", 1) - left_at < 0.2


async def test_slow_body_records_the_client_leaving_mid_body(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url) as client:
        url = "/slow-body?rid=b&chunks=50&ms=50"
        async with client.stream("GET", url) as response:
            assert await anext(response.aiter_raw()) == b"[0"
            left_at = trio.current_time()

    assert await target.wait_disconnect("b", 1) - left_at < 0.2


async def test_slow_body_ends_as_a_json_array(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url) as client:
        response = await client.get("/slow-body?chunks=3&ms=10")

    assert response.json() == [0, 1, 2]
    assert target.disconnects == {}


async def test_hops_end_at_the_echo(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url, follow_redirects=True) as client:
        response = await client.get("/hops/3")

    assert [r.status_code for r in response.history] == [302, 302, 302]
    assert response.json()["path"] == "/hops/0"


async def test_flaky_fails_then_answers(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url) as client:
        url = "/flaky/k?failures=2&status=502"
        statuses = [(await client.get(url)).status_code for _ in range(3)]
        last = await client.get(url)

    assert statuses == [502, 502, 200]
    assert last.json() == {"attempt": 4}


@pytest.mark.parametrize("length", ["yes", "no"])
async def test_huge_is_whole_json_or_counts_what_was_sent(target: Target, length: str) -> None:
    async with httpx.AsyncClient(base_url=target.url) as client:
        whole = await client.get(f"/huge?bytes=200000&length={length}")
        url = f"/huge?bytes=100000000&length={length}&rid=h"
        async with client.stream("GET", url) as response:
            await anext(response.aiter_raw())

    assert whole.json() == "x" * (200_000 - 2)
    assert ("content-length" in whole.headers) is (length == "yes")
    await target.wait_disconnect("h", 1)
    assert 0 < target.sent["h"] < 100_000_000


async def test_the_gzip_bomb_is_small_until_decoded(target: Target) -> None:
    async with (
        httpx.AsyncClient(base_url=target.url) as client,
        client.stream("GET", "/gzip-bomb") as response,
    ):
        raw = b"".join([piece async for piece in response.aiter_raw()])

    assert response.headers["content-encoding"] == "gzip"
    assert len(raw) < 100_000
    decoded = zlib.decompress(raw, 16 + zlib.MAX_WBITS)
    assert len(decoded) == BOMB_SIZE
    assert json.loads(decoded) == "x" * (BOMB_SIZE - 2)


async def test_the_llm_answers_a_completion(llm: FakeLLM) -> None:
    llm.script = [Answer("Sunny."), invalid_api_key()]
    async with httpx.AsyncClient(base_url=llm.url, headers={"Authorization": "Bearer k"}) as client:
        answer = await client.post("/chat/completions", json={"model": "m", "messages": PROMPT})
        refused = await client.post("/chat/completions", json={"model": "m", "messages": PROMPT})
        ran_out = await client.post("/chat/completions", json={"model": "m", "messages": PROMPT})

    completion = answer.json()
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "m"
    [choice] = completion["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Sunny.",
        "refusal": None,
        "annotations": [],
    }
    assert choice["finish_reason"] == "stop"
    usage = completion["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert ran_out.status_code == 500
    assert "run out" in ran_out.json()["error"]["message"]
    assert llm.requests[0]["headers"]["authorization"] == "Bearer k"
    assert llm.requests[0]["body"]["messages"] == PROMPT


async def test_a_streamed_tool_call_reassembles(llm: FakeLLM) -> None:
    arguments = '{"city": "Paris", "unit": "celsius"}'
    llm.script = [ToolCalls([Call("get_weather", arguments, id="call_1")])]
    request = {
        "model": "m",
        "messages": PROMPT,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "POST", f"{llm.url}/chat/completions", json=request) as source,
    ):
        datas = [event.data async for event in source.aiter_sse()]

    assert datas[-1] == "[DONE]"
    chunks: list[dict[str, Any]] = [json.loads(data) for data in datas[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    pieces = [
        call
        for chunk in chunks
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls", [])
    ]
    assert pieces[0] == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(piece.keys() == {"index", "function"} for piece in pieces[1:])
    assert len(pieces) > 2
    assert "".join(piece["function"]["arguments"] for piece in pieces) == arguments
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_a_hanging_stream_records_the_client_leaving(llm: FakeLLM) -> None:
    llm.script = [Answer("Sunny and warm.", hang=True)]
    request = {"model": "m", "messages": PROMPT, "stream": True}
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "POST", f"{llm.url}/chat/completions", json=request) as source,
    ):
        events = source.aiter_sse()
        first, second = [json.loads((await anext(events)).data) for _ in range(2)]
        left_at = trio.current_time()

    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert second["choices"][0]["delta"] == {"content": "Sunn"}
    assert await llm.wait_disconnect("0", 1) - left_at < 0.2


async def test_the_llm_takes_a_conversation_whose_tool_calls_are_answered(llm: FakeLLM) -> None:
    llm.script = [ToolCalls([Call("get_time", "{}")])]
    messages = [
        *PROMPT,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1"}, {"id": "call_2"}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "18 °C"},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    async with httpx.AsyncClient(base_url=llm.url) as client:
        response = await client.post("/chat/completions", json={"model": "m", "messages": messages})

    assert response.status_code == 200, response.text
    [choice] = response.json()["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    assert (call["type"], call["function"]) == ("function", {"name": "get_time", "arguments": "{}"})


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "tool", "content": "18 °C"}], "messages[0].tool_call_id"),
        ([{"role": "tool", "tool_call_id": "call_1", "content": "18 °C"}], "messages.[0].role"),
        (
            [
                {"role": "assistant", "tool_calls": [{"id": "call_1"}, {"id": "call_2"}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18 °C"},
                {"role": "user", "content": "And?"},
            ],
            "messages.[2].role",
        ),
        (
            [
                {"role": "assistant", "tool_calls": [{"id": "call_1"}]},
                {"role": "tool", "tool_call_id": "call_9", "content": "18 °C"},
            ],
            "messages.[1].tool_call_id",
        ),
    ],
)
async def test_the_llm_rejects_tool_messages_that_answer_no_call(
    llm: FakeLLM, messages: list[dict[str, Any]], param: str
) -> None:
    llm.script = [Answer("unused")]
    async with httpx.AsyncClient(base_url=llm.url) as client:
        response = await client.post("/chat/completions", json={"model": "m", "messages": messages})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert len(llm.script) == 1
