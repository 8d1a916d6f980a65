"""The `agent` node against a fake model that speaks OpenAI's Chat Completions protocol: tool
calls through the guarded client, answers plain and streamed (`node_delta`), JSON answers, the
provider's errors and the node's retry, and where a key from the environment may go."""

from typing import Any

import httpx
import pytest
import trio
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.e2e.conftest import CreateWorkflow, StartServer
from tests.e2e.reaching_out.runs import execute, log_of
from tests.outside.fake_llm import (
    Answer,
    Call,
    Fail,
    FakeLLM,
    Malformed,
    ToolCalls,
    error,
    invalid_api_key,
)
from tests.outside.target import Target
from tests.support import agent, chain, trigger

KEY_VARIABLE = "TEST_LLM_API_KEY"
KEY = "sk-test-0123456789abcdef"


def weather_agent(target: Target, **config: Any) -> dict[str, Any]:
    lookup = {
        "name": "lookup",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "http": {"url": f"{target.url}/json", "query": {"city": "{{args.city}}"}},
    }
    return agent(
        "ask",
        {
            "model": "gpt-test",
            "system": "You answer briefly.",
            "prompt": "Weather in {{trigger.data.city}}?",
            "tools": [lookup],
            **config,
        },
    )


async def test_a_tool_call_goes_out_and_its_result_comes_back_to_the_model(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, llm: FakeLLM, target: Target
) -> None:
    llm.script = [ToolCalls([Call("lookup", '{"city": "Paris"}')]), Answer("Sunny in Paris.")]
    workflow_id = await create_workflow(chain(trigger(), weather_agent(target, temperature=0.2)))
    run = await execute(owner, workflow_id, {"city": "Paris"})

    assert run["success"] is True, run
    assert run["output"] == "Sunny in Paris."
    assert [r.query for r in target.requests] == ["city=Paris"]
    first, second = (request["body"] for request in llm.requests)
    assert first["model"] == "gpt-test"
    assert first["temperature"] == 0.2
    assert first["messages"] == [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert first["tools"][0]["function"]["name"] == "lookup"
    call = second["messages"][2]["tool_calls"][0]
    tool_message = second["messages"][3]
    assert tool_message["role"] == "tool"
    assert tool_message["tool_call_id"] == call["id"]

    log = log_of(run, "ask")
    [tool_call] = log["toolCalls"]
    assert tool_call["name"] == "lookup"
    assert tool_call["arguments"] == {"city": "Paris"}
    assert tool_call["result"]["status"] == 200
    assert tool_call["result"]["body"]["query"] == {"city": "Paris"}
    assert isinstance(tool_call["durationMs"], int)
    request = log["llmRequest"]
    assert request["model"] == "gpt-test"
    roles = [message["role"] for message in request["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert request["usage"]["total_tokens"] > 0


async def stream_run(
    owner: httpx.AsyncClient, workflow_id: str, body: Any = None
) -> list[ServerSentEvent]:
    url = f"/api/workflows/{workflow_id}/execute/stream"
    async with aconnect_sse(owner, "POST", url, json=body or {}) as source:
        return [event async for event in source.aiter_sse()]


async def test_streamed_tokens_arrive_as_node_deltas_and_replay_from_the_store(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, llm: FakeLLM, target: Target
) -> None:
    pieces = ["Sunny, ", "24 deg", "rees, light", " wind."]
    answer = "".join(pieces)
    # Pieces 30 ms apart reach FlowTrux in reads of their own: each goes out as it comes.
    streamed = Answer(answer, chunks=pieces, pause_ms=30)
    llm.script = [ToolCalls([Call("lookup", '{"city": "Lyon"}')]), streamed]
    workflow_id = await create_workflow(chain(trigger(), weather_agent(target, stream=True)))
    events = await stream_run(owner, workflow_id, {"city": "Lyon"})

    names = [event.event for event in events]
    deltas = [event.json() for event in events if event.event == "node_delta"]
    assert deltas == [{"nodeId": "ask", "delta": piece, "attempt": 1} for piece in pieces]
    started = names.index("node_start", names.index("node_complete"))  # the agent's
    assert names[started + 1 : started + 5] == ["node_delta"] * 4
    assert names[started + 5 :] == ["node_complete", "complete"]
    assert events[-1].json()["output"] == answer
    assert target.requests[0].query == "city=Lyon"  # the arguments came in pieces
    assert llm.requests[0]["body"]["stream_options"] == {"include_usage": True}

    execution_id = events[-1].json()["executionId"]
    url = f"/api/executions/{execution_id}/events"
    async with aconnect_sse(owner, "GET", url, headers={"Last-Event-ID": "0"}) as source:
        replayed = [(event.id, event.event, event.data) async for event in source.aiter_sse()]
    assert replayed == [(event.id, event.event, event.data) for event in events]


async def test_a_json_answer_is_parsed_and_one_that_is_not_json_fails_the_node(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, llm: FakeLLM
) -> None:
    config = {"model": "m", "prompt": "Classify", "responseFormat": "json"}
    workflow_id = await create_workflow(chain(trigger(), agent("ask", config)))
    llm.script = [Answer('{"priority": "high"}'), Answer("high, I think")]

    parsed = await execute(owner, workflow_id)
    assert parsed["output"] == {"priority": "high"}
    assert llm.requests[0]["body"]["response_format"] == {"type": "json_object"}

    failed = await execute(owner, workflow_id)
    assert log_of(failed, "ask")["error"].startswith("the model's answer is not JSON")


@pytest.mark.parametrize(
    ("first", "error_start", "attempts"),
    [
        (invalid_api_key(), "the provider refused the API key (401): Incorrect API key", 1),
        (Malformed('{"choices": "none"}'), "the provider's answer is not a chat completion", 1),
        (Malformed("<html>", "text/html"), "the provider's answer is not valid JSON", 1),
        (Fail(400, error("bad model", "invalid_request_error")), "the provider refused", 1),
        (Fail(500, error("boom", "server_error")), None, 2),
        (Fail(503, "upstream down"), None, 2),
        (Fail(429, error("slow down", "rate_limit"), {"Retry-After": "1"}), None, 2),
    ],
)
async def test_provider_errors_are_clear_and_only_429_and_5xx_are_retried(
    owner: httpx.AsyncClient,
    create_workflow: CreateWorkflow,
    llm: FakeLLM,
    first: Any,
    error_start: str | None,
    attempts: int,
) -> None:
    config = {"model": "m", "prompt": "Hi"}
    retry = {"maxAttempts": 2, "backoffMs": 10}
    workflow_id = await create_workflow(chain(trigger(), agent("ask", config, retry=retry)))
    llm.script = [first, Answer("Hello.")]
    started = trio.current_time()
    run = await execute(owner, workflow_id)

    log = log_of(run, "ask")
    assert log["attempt"] == attempts
    if error_start is None:
        assert run["output"] == "Hello."
    else:
        assert log["error"].startswith(error_start), log["error"]
    if isinstance(first, Fail) and first.status == 429:
        assert trio.current_time() - started >= 1  # Retry-After, not the 10 ms backoff


async def test_a_model_that_keeps_calling_tools_stops_at_max_iterations(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, llm: FakeLLM, target: Target
) -> None:
    call = ToolCalls([Call("lookup", '{"city": "Oslo"}')])
    llm.script = [call, call, call]
    workflow_id = await create_workflow(chain(trigger(), weather_agent(target, maxIterations=2)))
    run = await execute(owner, workflow_id, {"city": "Oslo"})

    log = log_of(run, "ask")
    assert log["error"] == "the model still called tools in round 2, the last (maxIterations)"
    assert len(log["toolCalls"]) == 1  # the rounds so far are told; the last's calls not sent
    assert len(llm.requests) == 2
    assert len(target.requests) == 1


async def test_a_model_mistake_goes_back_to_the_model(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, llm: FakeLLM, target: Target
) -> None:
    llm.script = [
        ToolCalls([Call("forecast", "{}"), Call("lookup", "{not json"), Call("lookup", "{}")]),
        Answer("Sorry."),
    ]
    workflow_id = await create_workflow(chain(trigger(), weather_agent(target)))
    run = await execute(owner, workflow_id, {"city": "Oslo"})

    assert run["output"] == "Sorry."
    results = [call["result"] for call in log_of(run, "ask")["toolCalls"]]
    assert results[0] == {"error": "there is no tool named 'forecast'"}
    assert results[1]["error"].startswith("the arguments is not valid JSON")
    assert results[2]["error"].startswith("missing value at path 'args.city'")
    assert target.requests == []


async def test_the_api_key_goes_to_the_operators_endpoint_only(
    owner: httpx.AsyncClient,
    create_workflow: CreateWorkflow,
    llm: FakeLLM,
    target: Target,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    llm.script = [Answer("Hi.")]
    config = {"model": "m", "prompt": "Hi", "apiKeyEnv": KEY_VARIABLE}
    trusted = await create_workflow(chain(trigger(), agent("ask", config)))
    assert (await execute(owner, trusted))["output"] == "Hi."
    assert llm.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"

    elsewhere = {**config, "baseUrl": f"{target.url}/v1"}
    other = await create_workflow(chain(trigger(), agent("ask", elsewhere)))
    run = await execute(owner, other)
    assert "only sent to the operator's LLM endpoint" in log_of(run, "ask")["error"]
    assert target.requests == []


async def test_a_base_url_of_the_workflow_goes_through_the_guard(
    start_server: StartServer, llm: FakeLLM
) -> None:
    """The operator's endpoint is elsewhere and opened no network: the fake model on loopback,
    named by the workflow, is refused."""
    closed = await start_server(llm_base_url="http://127.0.0.1:9/v1")
    space = await closed.member("owner@example.com")
    async with httpx.AsyncClient(base_url=closed.url) as owner:
        login = {"email": "owner@example.com", "password": "correct horse battery staple"}
        assert (await owner.post("/api/auth/login", json=login)).status_code == 200
        config = {"model": "m", "prompt": "Hi", "baseUrl": llm.url}
        doc = chain(trigger(), agent("ask", config, retry={"maxAttempts": 3}))
        created = await owner.post("/api/workflows", json={"workspaceId": space, **doc})
        run = await execute(owner, created.json()["workflow"]["id"])

    log = log_of(run, "ask")
    assert log["error"].startswith("blocked: 127.0.0.1 is a loopback address")
    assert log["attempt"] == 1
    assert llm.requests == []
