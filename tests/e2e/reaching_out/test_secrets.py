"""No secret a workflow sends (in a header, a query string, a URL's credentials, or the key
`apiKeyEnv` names) appears in the stream, the stored history or the server's log, even when the
remote echoes it back or a provider's error quotes it."""

import logging
import sqlite3

import httpx
import pytest

from tests.e2e.conftest import CreateWorkflow, Server
from tests.e2e.reaching_out.runs import execute, log_of
from tests.outside.fake_llm import Fail, FakeLLM, error
from tests.outside.target import Target
from tests.support import agent, chain, http, trigger

KEY_VARIABLE = "TEST_SECRET_API_KEY"
SECRETS = {
    "bearer": "sk-bearer-secret-1a2b3c",
    "header": "hdr-secret-4d5e6f",
    "cookie": "cookie-secret-7a8b9c",
    "query": "query-secret-0d1e2f",
    "password": "url-password-3a4b5c",
    "env": "sk-env-secret-6d7e8f",
}


def assert_no_secret(text: str, where: str) -> None:
    for name, secret in SECRETS.items():
        assert secret not in text, f"the {name} secret is in {where}"


async def test_no_secret_reaches_the_stream_the_history_or_the_log(
    server: Server,
    owner: httpx.AsyncClient,
    create_workflow: CreateWorkflow,
    llm: FakeLLM,
    target: Target,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_VARIABLE, SECRETS["env"])
    # The provider refuses the key, quoting it as OpenAI does.
    refused = f"Incorrect API key provided: {SECRETS['env']}."
    llm.script = [Fail(401, error(refused, "invalid_request_error", code="invalid_api_key"))] * 2
    credentials = f"http://robot:{SECRETS['password']}@{target.url.removeprefix('http://')}"
    echo = {
        "method": "POST",
        "url": f"{target.url}/json",
        "headers": {
            "Authorization": f"Bearer {SECRETS['bearer']}",
            "X-Api-Key": SECRETS["header"],
            "Cookie": f"sid={SECRETS['cookie']}",
        },
        "query": {"api_key": SECRETS["query"], "city": "Paris"},
        "body": {"note": "hello"},
    }
    workflow_id = await create_workflow(
        chain(
            trigger(),
            agent(
                "ask",
                {"model": "m", "prompt": "Hi", "apiKeyEnv": KEY_VARIABLE},
                onError="continue",
            ),
            http("echo", echo),
            http("basic", {"url": f"{credentials}/json?from=basic"}),
            http("cookie", {"url": f"{target.url}/set-cookie"}),
        )
    )
    stream_url = f"/api/workflows/{workflow_id}/execute/stream"
    async with owner.stream("POST", stream_url, json={}) as streamed:
        stream_text = (await streamed.aread()).decode()
    run = await execute(owner, workflow_id)

    # The secrets went out: the remote got each of them.
    sent = target.requests[0]
    assert sent.headers["x-api-key"] == SECRETS["header"]
    assert SECRETS["query"] in sent.query
    assert llm.requests[0]["headers"]["authorization"] == f"Bearer {SECRETS['env']}"
    # And came back redacted: by name where a name says so, by value where echoed.
    echoed = log_of(run, "echo")["output"]["body"]
    assert echoed["headers"]["x-api-key"] == "[redacted]"
    assert echoed["headers"]["authorization"] == "[redacted]"
    assert echoed["headers"]["cookie"] == "[redacted]"
    assert echoed["query"]["api_key"] == "[redacted]"
    assert echoed["query"]["city"] == "Paris"
    [request] = log_of(run, "echo")["externalRequests"]
    assert "api_key=%5Bredacted%5D" in request["url"]
    basic = log_of(run, "basic")
    assert basic["output"]["body"]["headers"]["authorization"] == "Basic [redacted]"
    assert basic["externalRequests"][0]["url"].startswith("http://%5Bredacted%5D:%5Bredacted%5D@")
    assert log_of(run, "ask")["error"].startswith(
        "the provider refused the API key (401): Incorrect API key provided: [redacted]"
    )
    cookie_headers = log_of(run, "cookie")["output"]["headers"]
    assert cookie_headers["set-cookie"] == "[redacted]"
    assert cookie_headers["x-api-token"] == "[redacted]"

    execution_id = run["executionId"]
    history = await owner.get(f"/api/executions/{execution_id}")
    replay = await owner.get(
        f"/api/executions/{execution_id}/events", headers={"Last-Event-ID": "0"}
    )
    assert_no_secret(stream_text, "the stream")
    assert_no_secret(str(run), "the execute answer")
    assert_no_secret(history.text, "the history")
    assert_no_secret(replay.text, "the replayed events")
    with sqlite3.connect(server.database) as database:
        for table in ("executions", "execution_events", "node_logs"):
            rows = database.execute(f"SELECT * FROM {table}").fetchall()
            assert_no_secret(repr(rows), f"the table {table}")
    assert_no_secret(caplog.text, "the server's log")
