"""What a careless or hostile provider (or workflow) may do to the `agent` node, and the clean
result each must give: secrets scrubbed even in pieces, refusals and cut-off answers as errors,
a retry's pieces told apart, bounded conversations and event counts, no "unexpected error"."""

import json
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.e2e.conftest import CreateWorkflow
from tests.e2e.reaching_out.runs import execute, log_of
from tests.outside.fake_llm import Answer, Call, Fail, FakeLLM, Malformed, ToolCalls, error
from tests.outside.target import Target
from tests.support import agent, chain, trigger

KEY_VARIABLE = "TEST_PIECES_API_KEY"
KEY = "sk-pieces-0123456789abcdef"
MIB = 1024 * 1024


def chunk(finish: str | None = None, **delta: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "c-1", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [choice]}  # fmt: skip


def stream(*chunks: dict[str, Any], done: bool = True) -> Malformed:
    """A 200 `text/event-stream` whose frames are `chunks`, all in one write."""
    frames = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return Malformed(frames + ("data: [DONE]\n\n" if done else ""), "text/event-stream")


async def streamed(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, config: dict[str, Any], **node: Any
) -> list[ServerSentEvent]:
    config = {"model": "m", "prompt": "Hi", "stream": True, **config}
    workflow_id = await create_workflow(chain(trigger(), agent("ask", config, **node)))
    url = f"/api/workflows/{workflow_id}/execute/stream"
    async with aconnect_sse(owner, "POST", url, json={}) as source:
        return [event async for event in source.aiter_sse()]


def deltas(events: list[ServerSentEvent]) -> list[dict[str, Any]]:
    return [event.json() for event in events if event.event == "node_delta"]


def agent_log(events: list[ServerSentEvent]) -> dict[str, Any]:
    logs = [event.json() for event in events if event.event == "node_complete"]
    found: dict[str, Any] = next(log for log in logs if log["nodeId"] == "ask")
    return found


async def test_a_key_streamed_back_in_pieces_is_scrubbed_whole(
    owner: httpx.AsyncClient,
    create_workflow: CreateWorkflow,
    llm: FakeLLM,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model repeats the key three characters at a time, each piece in a read of its own:
    no piece holds the key, yet their text would."""
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    text = f"Your key is {KEY}, I think."
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    llm.script = [Answer(text, chunks=pieces, pause_ms=5)]
    events = await streamed(owner, create_workflow, {"apiKeyEnv": KEY_VARIABLE})

    told = "".join(delta["delta"] for delta in deltas(events))
    assert told == "Your key is [redacted], I think."
    assert len(deltas(events)) > 5  # they did come in pieces
    assert events[-1].json()["output"] == told
    assert KEY[:8] not in "".join(event.data for event in events)


async def test_a_streamed_refusal_is_an_error(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, llm: FakeLLM
) -> None:
    llm.script = [
        stream(
            chunk(role="assistant", content=None, refusal=""),
            chunk(refusal="I can't help"),
            chunk(refusal=" with that."),
            chunk(finish="stop"),
        )
    ]
    events = await streamed(owner, create_workflow, {})
    assert agent_log(events)["error"] == "the model refused: I can't help with that."


@pytest.mark.parametrize(
    ("turn", "streaming", "said"),
    [
        (
            Malformed(
                json.dumps(
                    {
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "The capital of"},
                                "finish_reason": "length",
                            }
                        ],
                    }
                )
            ),
            False,
            "cut off at its token limit",
        ),
        (stream(chunk(content="Well"), chunk(finish="content_filter")), True, "content filter"),
    ],
)
async def test_an_answer_stopped_short_is_an_error(
    owner: httpx.AsyncClient,
    create_workflow: CreateWorkflow,
    llm: FakeLLM,
    turn: Any,
    streaming: bool,
    said: str,
) -> None:
    llm.script = [turn]
    events = await streamed(owner, create_workflow, {"stream": streaming})
    assert said in agent_log(events)["error"]


async def test_a_retry_starts_its_pieces_again_and_says_so(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, llm: FakeLLM
) -> None:
    llm.script = [
        stream(chunk(content="The answer "), chunk(content="is 4"), done=False),  # cut short
        Answer("Paris.", chunks=["Par", "is."], pause_ms=5),
    ]
    events = await streamed(owner, create_workflow, {}, retry={"maxAttempts": 2})

    by_attempt: dict[int, str] = {}
    for delta in deltas(events):
        by_attempt[delta["attempt"]] = by_attempt.get(delta["attempt"], "") + delta["delta"]
    assert by_attempt == {1: "The answer is 4", 2: "Paris."}
    assert agent_log(events)["output"] == "Paris."


async def test_a_conversation_may_not_outgrow_a_nodes_output(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, llm: FakeLLM, target: Target
) -> None:
    """Two tool results of 3 MiB: the second would take the conversation past 4 MiB, so it is
    never sent to the model (nor held round after round)."""
    huge = {"name": "huge", "http": {"url": f"{target.url}/huge?bytes={3 * MIB}"}}
    llm.script = [ToolCalls([Call("huge", "{}"), Call("huge", "{}")]), Answer("Never.")]
    config = {"model": "m", "prompt": "Hi", "tools": [huge]}
    workflow_id = await create_workflow(chain(trigger(), agent("ask", config)))
    run = await execute(owner, workflow_id)

    error = log_of(run, "ask")["error"]
    assert error.startswith("the conversation with the model is larger than 4,194,304 bytes")
    assert len(llm.requests) == 1


async def test_a_flood_of_tiny_chunks_makes_few_events(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, llm: FakeLLM
) -> None:
    """20,000 one-character chunks in one write: one delta per read of the network, not one
    event per chunk."""
    text = "ab" * 10_000
    llm.script = [stream(*(chunk(content=c) for c in text), chunk(finish="stop"))]
    events = await streamed(owner, create_workflow, {})

    assert "".join(delta["delta"] for delta in deltas(events)) == text
    assert len(deltas(events)) < 200
    assert events[-1].json()["output"] == text


async def test_odd_answers_and_urls_give_clean_errors(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, llm: FakeLLM
) -> None:
    llm.script = [Fail(429, error("slow down", "rate_limit"), {"Retry-After": "²"})]
    rate = await streamed(owner, create_workflow, {"stream": False})
    assert agent_log(rate)["error"] == "the provider is limiting requests (429): slow down"

    idna = await streamed(owner, create_workflow, {"baseUrl": "http://xn--.com/v1"})
    said = agent_log(idna)["error"]
    assert said.startswith("baseUrl: the URL is not valid"), said


async def test_a_json_answer_asked_for_says_json(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, llm: FakeLLM
) -> None:
    """OpenAI refuses JSON mode unless a message mentions JSON: the node says it when the
    prompt does not."""
    llm.script = [Answer('{"tier": "gold"}'), Answer('{"tier": "gold"}')]
    config = {"responseFormat": "json", "stream": False}
    await streamed(owner, create_workflow, {**config, "prompt": "Classify the ticket"})
    await streamed(owner, create_workflow, {**config, "prompt": "Classify it as json"})

    first, second = (request["body"]["messages"] for request in llm.requests)
    assert first[0] == {"role": "system", "content": "Answer with a JSON object."}
    assert [message["role"] for message in second] == ["user"]  # it said so already
