"""Randomised runs over real HTTP/1.1 and HTTP/2 (h2c): random valid graphs, 16 runs at a time,
with random disconnects (a closed connection, or an HTTP/2 stream reset), Stops and observers
joining at random Last-Event-IDs; every run keeps the invariants of invariants.py."""

from tests.e2e.conftest import StartServer
from tests.e2e.faults.harness import create_graphs, in_process, scenarios, verdict_on
from tests.e2e.faults.scenarios import RunRecord, play_all
from tests.e2e.faults.seeds import Seed

RUNS = 160  # per HTTP version
GRAPHS = 24


async def test_random_runs_streams_stops_and_observers_keep_every_invariant(
    start_server: StartServer, http_version: str, fault_seed: Seed
) -> None:
    server = await start_server(execute_rate="100000/minute")
    rng = fault_seed.rng(f"random-runs/{http_version}/graphs")
    async with in_process(server, http_version) as target:
        graphs = await create_graphs(target.shared, rng, GRAPHS)
        records: list[RunRecord] = []
        drawn = scenarios(
            fault_seed, f"random-runs/{http_version}", graphs, http_version, range(RUNS)
        )
        await play_all(target, drawn, records)
        await verdict_on(fault_seed, server.database, records)
