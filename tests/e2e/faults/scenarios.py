"""One run of the harness: a random graph, a random body, and what its clients do to it (a
starter that reads to the end or leaves, maybe a Stop, maybe observers joining at a random
`Last-Event-ID`), drawn from the seed; played against a real server, 16 runs at a time."""

import random
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import attrs
import trio

from tests.e2e.faults.clients import (
    H2_RESET,
    Reading,
    StopAnswer,
    Target,
    observe,
    start,
    start_and_reset,
    stop,
)
from tests.e2e.faults.graphs import RandomGraph, random_body
from tests.e2e.faults.stored import until_ended

CONCURRENCY = 16
RESET_RUN_ENDS_WITHIN_S = 10  # a reset stream's connection stays open until its run ended
REFUSED_PAUSE_S = 0.5


@attrs.frozen
class ObserverPlan:
    wait_s: float  # after the starter's first event
    pick: float  # where it joins, in [0, 1) of what the starter had received then
    in_query: bool  # `?lastEventId=` rather than the header
    leave_after: int | None  # events, or None: it reads to the end


@attrs.frozen
class Scenario:
    number: int
    graph: RandomGraph
    workflow_id: str
    body: dict[str, Any]
    transport: str  # of the starter: HTTP/1.1, HTTP/2 or H2_RESET
    leave_after: int | None  # the starter leaves after this many events; None: reads to the end
    stop_after_s: float | None  # a Stop this long after the starter's first event
    observers: tuple[ObserverPlan, ...]

    def describe(self) -> str:
        """The scenario in one line, for failure messages."""
        starter = "reads to the end" if self.leave_after is None else (
            f"leaves after {self.leave_after} events"
        )  # fmt: skip
        stop = "" if self.stop_after_s is None else f", Stop at {self.stop_after_s * 1000:.0f} ms"
        observers = "".join(
            f", observer at {o.wait_s * 1000:.0f} ms from {o.pick:.2f}"
            f"{' (query)' if o.in_query else ''}"
            f"{'' if o.leave_after is None else f' leaving after {o.leave_after}'}"
            for o in self.observers
        )
        return (
            f"run #{self.number} over {self.transport}, body {self.body}, starter {starter}"
            f"{stop}{observers}; graph {self.graph.describe()}"
        )


def draw(
    rng: random.Random, number: int, graphs: Sequence[tuple[RandomGraph, str]], http_version: str
) -> Scenario:
    """A random scenario over one of `graphs` (a graph and its workflow id)."""
    graph, workflow_id = rng.choice(graphs)
    transport, leave_after = http_version, None
    behaviour = rng.random()
    if behaviour < 0.3:
        leave_after = rng.randint(1, 8)
    elif behaviour < 0.42 and http_version == "HTTP/2":
        transport, leave_after = H2_RESET, rng.randint(1, 8)
    stop_after_s = rng.uniform(0, 0.3) if rng.random() < 0.25 else None
    observers = tuple(
        ObserverPlan(
            wait_s=rng.uniform(0, 0.4),
            pick=rng.random(),
            in_query=rng.random() < 0.3,
            leave_after=rng.randint(1, 5) if rng.random() < 0.25 else None,
        )
        for _ in range(rng.choices((0, 1, 2), weights=(50, 35, 15))[0])
    )
    return Scenario(
        number, graph, workflow_id, random_body(rng), transport, leave_after, stop_after_s,
        observers,
    )  # fmt: skip


@attrs.define(eq=False)
class RunRecord:
    """What happened to one scenario's run, as its clients saw it."""

    scenario: Scenario
    starter: Reading
    execution_id: str | None = None
    observers: list[Reading] = attrs.field(factory=list)
    stops: list[StopAnswer] = attrs.field(factory=list)

    @property
    def readings(self) -> list[Reading]:
        return [self.starter, *self.observers]


async def play(target: Target, scenario: Scenario, records: list[RunRecord]) -> None:
    """Play `scenario` against `target`; its record goes into `records` at once, so that a
    round cut short still has what happened so far."""
    starter = Reading("starter", scenario.transport)
    record = RunRecord(scenario, starter)
    records.append(record)
    async with trio.open_nursery() as nursery:
        if scenario.transport == H2_RESET:
            assert scenario.leave_after is not None
            ended = partial(until_ended, target.database, within_s=RESET_RUN_ENDS_WITHIN_S)
            nursery.start_soon(
                start_and_reset, target, scenario.workflow_id, scenario.body, starter,
                scenario.leave_after, ended,
            )  # fmt: skip
        else:
            nursery.start_soon(
                start, target, scenario.workflow_id, scenario.body, starter, scenario.leave_after
            )
        await starter.first.wait()
        if not starter.events or starter.events[0].name != "start":
            if starter.status not in (200, None):  # refused: its slot waits a while, as a
                await trio.sleep(REFUSED_PAUSE_S)  # client that heeds Retry-After does
            return  # the invariants judge it
        record.execution_id = starter.events[0].json()["executionId"]
        began = trio.current_time()
        if scenario.stop_after_s is not None:
            nursery.start_soon(_stop_at, target, record, began + scenario.stop_after_s)
        for plan in scenario.observers:
            nursery.start_soon(_observe_at, target, record, plan, began + plan.wait_s)


async def _stop_at(target: Target, record: RunRecord, when: float) -> None:
    await trio.sleep_until(when)
    assert record.execution_id is not None
    record.stops.append(await stop(target.shared, record.execution_id))


async def _observe_at(target: Target, record: RunRecord, plan: ObserverPlan, when: float) -> None:
    await trio.sleep_until(when)
    assert record.execution_id is not None
    seen = record.starter.last_seq
    reading = Reading("observer", target.http_version, after=min(seen, int(plan.pick * (seen + 1))))
    record.observers.append(reading)
    await observe(
        target, record.execution_id, reading, in_query=plan.in_query, leave_after=plan.leave_after
    )


async def play_all(
    target: Target,
    scenarios: Iterable[Scenario],
    records: list[RunRecord],
    *,
    until: trio.Event | None = None,
    concurrency: int = CONCURRENCY,
) -> None:
    """Play the scenarios in order, `concurrency` runs at a time, their records into `records`;
    once `until` is set, start no more of them."""
    limiter = trio.CapacityLimiter(concurrency)

    async def one(scenario: Scenario, slot: object) -> None:
        try:
            await play(target, scenario, records)
        finally:
            limiter.release_on_behalf_of(slot)

    async with trio.open_nursery() as nursery:
        for scenario in scenarios:
            slot = object()
            await limiter.acquire_on_behalf_of(slot)
            if until is not None and until.is_set():
                limiter.release_on_behalf_of(slot)
                return
            nursery.start_soon(one, scenario, slot)
