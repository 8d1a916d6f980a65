"""Setting a round up and judging it: the owner's clients on a server, a pool of random
workflows created through the API, scenarios drawn over them, and the verdict once no run is
left RUNNING."""

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx

from tests.e2e.conftest import Server, logged_in
from tests.e2e.faults.clients import Target, client_for
from tests.e2e.faults.graphs import RandomGraph, random_graph
from tests.e2e.faults.invariants import Expect, Verdict, judge, tally
from tests.e2e.faults.scenarios import RunRecord, Scenario, draw
from tests.e2e.faults.seeds import Seed
from tests.e2e.faults.stored import read_runs, until_none_running
from tests.e2e.processes import post_workflow

OWNER = "owner@example.com"
SETTLE_S = 15  # runs whose clients are done may still be ending (background runs, Stops)


LogIn = Callable[[httpx.AsyncClient], Awaitable[object]]


@asynccontextmanager
async def owner_target(
    url: str, http_version: str, database: Path, log_in: LogIn
) -> AsyncIterator[Target]:
    """The server at `url` over `http_version`, as the owner `log_in` logs in sees it."""
    async with client_for(url, http_version) as shared:
        await log_in(shared)
        yield Target(url, http_version, shared, database)


@asynccontextmanager
async def in_process(server: Server, http_version: str) -> AsyncIterator[Target]:
    """The conftest server (real hypercorn, real SQLite, in this process) as its owner sees it."""
    await server.member(OWNER)
    owner = partial(logged_in, email=OWNER)
    async with owner_target(server.url, http_version, server.database, owner) as target:
        yield target


async def create_graphs(
    client: httpx.AsyncClient, rng: random.Random, count: int, *, slow: int = 0
) -> list[tuple[RandomGraph, str]]:
    """`count` random workflows (`slow` of them with delays of up to 1 s), created through the
    API: each graph with its workflow id."""
    graphs = [random_graph(rng, f"Random {number}", slow=number < slow) for number in range(count)]
    return [(graph, await post_workflow(client, graph.doc)) for graph in graphs]


def scenarios(
    seed: Seed,
    purpose: str,
    graphs: list[tuple[RandomGraph, str]],
    http_version: str,
    numbers: Iterable[int],
) -> Iterator[Scenario]:
    """The scenarios numbered `numbers` over `graphs`, each drawn from a generator of its own
    (so that the same seed draws the same scenario whatever order runs end in)."""
    for number in numbers:
        yield draw(seed.rng(f"{purpose}/run {number}"), number, graphs, http_version)


async def verdict_on(
    seed: Seed,
    database: Path,
    records: Iterable[RunRecord],
    expect: Expect | None = None,
    verdict: Verdict | None = None,
) -> str:
    """Wait until no run is RUNNING (SETTLE_S at most), then judge every run; fail with every
    violation found (with those already in `verdict`). Returns the round's tally."""
    records = list(records)
    verdict = verdict or Verdict(seed)
    for execution_id in await until_none_running(database, SETTLE_S):
        verdict.add(None, f"execution {execution_id} still RUNNING {SETTLE_S} s after its round")
    ids = [record.execution_id for record in records if record.execution_id]
    stored = await read_runs(database, ids)
    judge(verdict, records, stored, expect or Expect())
    summary = tally(records, stored)
    print(summary)
    verdict.assert_none(summary)
    return summary
