"""`/metrics` in Prometheus' text format, read with prometheus-client's own parser: counters move
as runs start and end, node durations by type, streams open, journal commits, Stop latency; and
with `--workers 2`, every worker's runs add up on any worker."""

import signal
from pathlib import Path

import httpx
import trio
from httpx_sse import aconnect_sse
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import CreateWorkflow, wait_until_finished
from tests.e2e.processes import create_workflow, flowtrux, running, server_env
from tests.support import chain, delay, fail, trigger

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_counters_move_as_runs_end(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    done = await create_workflow(chain(trigger(), delay("wait", 1)))
    failing = await create_workflow(chain(trigger(), fail("boom", "no")))
    waiting = await create_workflow(chain(trigger(), delay("wait", 30_000)))
    before = await scrape(owner)

    assert (await owner.post(f"/api/workflows/{done}/execute", json={})).status_code == 200
    assert (await owner.post(f"/api/workflows/{failing}/execute", json={})).status_code == 200
    url = f"/api/workflows/{waiting}/execute/stream"
    async with aconnect_sse(owner, "POST", url, json={}) as source:
        events = source.aiter_sse()
        execution_id = (await anext(events)).json()["executionId"]
        while (await anext(events)).event != "node_start":
            pass
        while_open = await scrape(owner)
        assert (await owner.post(f"/api/executions/{execution_id}/cancel")).status_code == 202
        await wait_until_finished(owner, execution_id)
    after = await scrape(owner)

    assert moved(before, after, "flowtrux_runs_started_total", trigger="manual") == 3
    assert moved(before, after, "flowtrux_runs_ended_total", status="COMPLETED") == 1
    assert moved(before, after, "flowtrux_runs_ended_total", status="FAILED") == 1
    assert moved(before, after, "flowtrux_runs_ended_total", status="CANCELLED") == 1
    assert moved(before, after, "flowtrux_stop_latency_seconds_count") == 1
    assert moved(before, after, "flowtrux_node_duration_seconds_count", type="delay",
                 status="success") == 1  # fmt: skip
    assert moved(before, after, "flowtrux_node_duration_seconds_count", type="fail",
                 status="error") == 1  # fmt: skip
    assert moved(before, while_open, "flowtrux_open_streams") == 1
    assert moved(before, after, "flowtrux_events_sent_total") >= 5
    assert moved(before, after, "flowtrux_journal_commit_records_sum") >= 10
    assert moved(before, after, "flowtrux_journal_commit_seconds_count") >= 1


async def test_the_workers_metrics_add_up_on_any_worker(tmp_path: Path) -> None:
    env = await server_env(tmp_path)
    serving = running(flowtrux("serve", "--workers", "2", "--port", "0"), env, tmp_path)
    async with serving as (process, url, _), httpx.AsyncClient(base_url=url) as owner:
        workflow_id = await create_workflow(owner, chain(trigger(), delay("wait", 1)))
        for _ in range(10):  # on fresh connections: both workers run some
            async with httpx.AsyncClient(base_url=url, cookies=owner.cookies) as caller:
                ran = await caller.post(f"/api/workflows/{workflow_id}/execute", json={})
                assert ran.status_code == 200, ran.text
        for _ in range(4):  # whichever worker answers tells the total
            async with httpx.AsyncClient(base_url=url) as scraper:
                samples = await scrape(scraper)
            assert samples[("flowtrux_runs_ended_total", (("status", "COMPLETED"),))] == 10
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await process.wait() == 0
