"""The store fails under running streams: locked by another connection for longer than any
retry budget, or refusing one run's record. Every run still ends with exactly one terminal
event, its stored status says the same, other runs lose nothing, and nothing stays RUNNING.
Real hypercorn over HTTP/1.1, a real SQLite file locked by a real second connection."""

import json
from typing import Any

import attrs
import httpx
import trio

from tests.e2e.conftest import Server, StartServer, assert_error, logged_in, new_client
from tests.faults import write_lock_held
from tests.support import chain, delay, transform, trigger

LOCKED_S = 35  # longer than the ~31 s after which the first journal dropped a batch for good
TERMINAL = {"complete", "error", "cancelled"}


@attrs.define
class Stream:
    """One `execute/stream` call read line by line, so that comments (keepalives) count too."""

    lines: list[tuple[float, str]] = attrs.field(factory=list)
    reached: dict[str, trio.Event] = attrs.field(factory=dict)

    def events(self) -> list[tuple[str, str, Any]]:
        """(id, event, data) of each event, in order."""
        found: list[tuple[str, str, Any]] = []
        fields: dict[str, str] = {}
        for _, line in self.lines:
            if not line:
                if fields:
                    found.append((fields["id"], fields["event"], json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        return found

    def keepalives_between(self, start: float, end: float) -> int:
        return sum(start <= at <= end and line == ": keepalive" for at, line in self.lines)

    def when(self, text: str) -> trio.Event:
        """Set once a line holding `text` has arrived (or at once if one has)."""
        reached = self.reached.setdefault(text, trio.Event())
        if any(text in line for _, line in self.lines):
            reached.set()
        return reached

    async def read(self, client: httpx.AsyncClient, workflow_id: str, body: Any) -> None:
        url = f"/api/workflows/{workflow_id}/execute/stream"
        async with client.stream("POST", url, json=body) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                self.lines.append((trio.current_time(), line))
                for text, reached in self.reached.items():
                    if text in line:
                        reached.set()


def new_user_client(server: Server) -> httpx.AsyncClient:
    client = new_client(server, "HTTP/1.1")
    client.timeout = httpx.Timeout(LOCKED_S + 30)
    return client


async def create(client: httpx.AsyncClient, workspace_id: str, doc: dict[str, Any]) -> str:
    response = await client.post("/api/workflows", json={"workspaceId": workspace_id, **doc})
    assert response.status_code == 201, response.text
    workflow_id: str = response.json()["workflow"]["id"]
    return workflow_id


async def statuses(client: httpx.AsyncClient, *execution_ids: str) -> list[str]:
    found = []
    for execution_id in execution_ids:
        response = await client.get(f"/api/executions/{execution_id}")
        found.append(response.json()["execution"]["status"])
    return found


async def running(*clients: httpx.AsyncClient) -> list[str]:
    """The ids of the executions RUNNING that these clients' users can see."""
    found = []
    for client in clients:
        listed = await client.get("/api/executions", params={"status": "RUNNING"})
        found += [execution["id"] for execution in listed.json()["executions"]]
    return found


async def test_a_store_locked_past_every_retry_budget_delays_runs_and_loses_nothing(
    start_server: StartServer,
) -> None:
    server = await start_server(keepalive_s=1)
    ada_space = await server.member("ada@example.com", workspace="Ada's")
    bob_space = await server.member("bob@example.com", workspace="Bob's")
    doc = chain(trigger(), delay("wait", 300), transform("done", {"who": "{{trigger.data.who}}"}))
    async with new_user_client(server) as ada, new_user_client(server) as bob:
        await logged_in(ada, "ada@example.com")
        await logged_in(bob, "bob@example.com")
        ada_flow, bob_flow = await create(ada, ada_space, doc), await create(bob, bob_space, doc)
        streams = {"ada": Stream(), "bob": Stream()}
        answer: list[httpx.Response] = []
        async with trio.open_nursery() as nursery:

            async def execute() -> None:
                path = f"/api/workflows/{ada_flow}/execute"
                answer.append(await ada.post(path, json={"who": "carol"}))

            nursery.start_soon(streams["ada"].read, ada, ada_flow, {"who": "ada"})
            nursery.start_soon(streams["bob"].read, bob, bob_flow, {"who": "bob"})
            nursery.start_soon(execute)
            with trio.fail_after(10):
                for stream in streams.values():
                    await stream.when('"nodeId":"wait"').wait()
                while True:  # the JSON call's run is live too
                    if len(await running(ada, bob)) == 3:
                        break
                    await trio.sleep(0.01)

            with write_lock_held(server.database):
                locked_at = trio.current_time()
                await trio.sleep(8)  # the journal has found the store locked by now
                refused = await bob.post(f"/api/workflows/{bob_flow}/execute", json={})
                assert_error(refused, 503, "store_unavailable")
                assert refused.headers["retry-after"] == "5"
                assert (await bob.get("/readyz")).status_code == 503
                await trio.sleep(LOCKED_S - 8)
                for stream in streams.values():
                    assert not TERMINAL & {name for _, name, _ in stream.events()}
                assert not answer  # still waiting for its run's end to be stored
                unlocked_at = trio.current_time()

        assert (await bob.get("/readyz")).status_code == 200
        for who, stream in streams.items():
            events = stream.events()
            assert [int(seq) for seq, _, _ in events] == list(range(1, len(events) + 1))
            assert [name for _, name, _ in events if name in TERMINAL] == ["complete"]
            assert events[-1][2]["output"] == {"who": who}
            # the stream stayed open and kept its keepalives while the store was locked
            assert stream.keepalives_between(locked_at, unlocked_at) >= LOCKED_S // 2
        (response,) = answer
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["success"], body["error"], body["output"]) == (True, None, {"who": "carol"})
        ids = [stream.events()[-1][2]["executionId"] for stream in streams.values()]
        assert await statuses(ada, ids[0], body["executionId"]) == ["COMPLETED", "COMPLETED"]
        assert await statuses(bob, ids[1]) == ["COMPLETED"]
        assert await running(ada, bob) == []


async def test_a_record_the_store_refuses_fails_only_its_own_run(server: Server) -> None:
    ada_space = await server.member("ada@example.com", workspace="Ada's")
    bob_space = await server.member("bob@example.com", workspace="Bob's")
    healthy = chain(trigger(), delay("wait", 300), transform("done", {"ok": True}))
    poisoned = chain(trigger(), delay("wait", 300), transform("bad", "half a pair: \ud800"))
    async with new_user_client(server) as ada, new_user_client(server) as bob:
        await logged_in(ada, "ada@example.com")
        await logged_in(bob, "bob@example.com")
        # The door refuses a lone surrogate now; an earlier version's database may hold one.
        stored = await server.store.workflows.create(
            ada_space, "Poisoned", poisoned["nodes"], poisoned["edges"]
        )
        runs = {
            "poisoned": (ada, stored.id, Stream()),
            "ada": (ada, await create(ada, ada_space, healthy), Stream()),
            "bob": (bob, await create(bob, bob_space, healthy), Stream()),
        }
        async with trio.open_nursery() as nursery:
            for client, workflow_id, stream in runs.values():
                nursery.start_soon(stream.read, client, workflow_id, {})
            with trio.fail_after(10):
                for _, _, stream in runs.values():
                    await stream.when('"nodeId":"wait"').wait()
            # Held while the delays end, so that all three runs' next records share a batch.
            with write_lock_held(server.database):
                await trio.sleep(1)

        error = "FlowTrux could not store this run's events (UnicodeEncodeError"
        for name, (client, _, stream) in runs.items():
            events = stream.events()
            assert [int(seq) for seq, _, _ in events] == list(range(1, len(events) + 1)), name
            terminal = [(kind, data) for _, kind, data in events if kind in TERMINAL]
            assert len(terminal) == 1, name
            kind, data = terminal[0]
            execution = (await client.get(f"/api/executions/{data['executionId']}")).json()
            if name == "poisoned":
                assert kind == "error"
                assert data["error"].startswith(error)
                assert (execution["execution"]["status"], execution["execution"]["error"]) == (
                    "FAILED",
                    data["error"],
                )
                logs = {log["nodeId"]: log for log in execution["execution"]["logs"]}
                assert sorted(logs) == ["bad", "trigger", "wait"]  # one each, as for any run
                assert logs["bad"]["error"].startswith("FlowTrux could not store this log")
            else:
                assert (kind, data["output"]) == ("complete", {"ok": True}), name
                assert execution["execution"]["status"] == "COMPLETED"

        response = await ada.post(f"/api/workflows/{stored.id}/execute", json={})
        body = response.json()
        assert (response.status_code, body["success"]) == (200, False)
        assert body["error"].startswith(error)
        assert await statuses(ada, body["executionId"]) == ["FAILED"]
        assert await running(ada, bob) == []


async def test_a_workflow_an_earlier_version_stored_with_a_lone_surrogate_can_be_read(
    server: Server,
) -> None:
    space = await server.member("ada@example.com")
    doc = chain(trigger(), transform("t", "half a pair: \ud800"))  # in its JSON definition
    stored = await server.store.workflows.create(space, "Old", doc["nodes"], doc["edges"])
    async with new_user_client(server) as ada:
        await logged_in(ada, "ada@example.com")
        response = await ada.get(f"/api/workflows/{stored.id}")
        assert response.status_code == 200, response.text
        assert b"\\ud800" in response.content  # escaped: UTF-8 cannot carry it
        assert response.json()["workflow"]["nodes"] == doc["nodes"]  # read back as stored
