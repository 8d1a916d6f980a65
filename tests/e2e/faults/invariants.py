"""The invariants every run of the harness must keep, judged from what its clients received and
what the store holds. Every violation is reported with the seed, the execution id, the scenario
and what was wrong; all of them are gathered before the test fails, so one failure shows them
all.

On every run:
- the stored events are 1..n, `start` first, exactly one terminal event, last, and it says what
  the stored row says (status, error, output);
- every node that started has exactly one `node_complete` (unless its process died), none starts
  twice, and in a CANCELLED run none starts once a node was stopped;
- every stream a client read to its end has exactly one terminal event, last; the ids any client
  received are contiguous from its Last-Event-ID on; every event any client received is stored,
  identical;
- the outcome is the graph's (workflow.md's rules, timing aside), or CANCELLED when a Stop or a
  disconnect came, or INTERRUPTED exactly for the runs in flight when their server was killed;
- the history has one log per node (unless its process died), the same as its `node_complete`.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from tests.e2e.faults.clients import Reading
from tests.e2e.faults.frames import Event
from tests.e2e.faults.graphs import Prediction, RandomGraph
from tests.e2e.faults.scenarios import RunRecord
from tests.e2e.faults.seeds import Seed
from tests.e2e.faults.stored import StoredLog, StoredRun

TERMINAL_EVENT = {"COMPLETED": "complete", "FAILED": "error", "CANCELLED": "cancelled",
                  "INTERRUPTED": "error"}  # fmt: skip
CANCELLED_BY_USER = "Execution cancelled by user"
INTERRUPTED = "Execution interrupted: the process running it stopped"
SHOWN = 40  # violations listed in the assertion message


def _never(sent_at: float, answered_at: float) -> bool:
    return False


@attrs.frozen
class Expect:
    """What a round allows beyond a run on a healthy server."""

    interrupted: frozenset[str] = frozenset()  # in flight when their server was killed
    # When a server was killed, and when its successor was up: a request going on meanwhile
    # may have found no server, lost it, or been cut short by the harness.
    killed_at: float | None = None
    down_until: float | None = None
    # Whether a request sent and answered at these times may be refused 503 store_unavailable
    # (the store was failing meanwhile).
    may_refuse: Callable[[float, float], bool] = _never
    # When a request was sent and answered, in the terms of the round's fault (for messages).
    when: Callable[[float, float | None], str] = lambda sent_at, answered_at: ""

    def cut_short(self, sent_at: float, ended_at: float | None) -> bool:
        """Whether a request sent at `sent_at` that ended at `ended_at` may have lost its
        server: it was going on while the server was down (from the kill to its successor)."""
        if self.killed_at is None or self.down_until is None:
            return False
        return sent_at <= self.down_until and (ended_at is None or ended_at >= self.killed_at)

    def refused(self, status: int | None, answer: Any, sent_at: float, answered_at: float | None
                ) -> bool:  # fmt: skip
        """Whether an answer is a 503 store_unavailable the store's failure allows."""
        code = answer.get("code") if isinstance(answer, dict) else None
        if isinstance(answer, str) and '"store_unavailable"' in answer:
            code = "store_unavailable"
        return (
            status == 503
            and code == "store_unavailable"
            and answered_at is not None
            and self.may_refuse(sent_at, answered_at)
        )


@attrs.define
class Verdict:
    """The violations found, each naming the seed, the execution and what was wrong."""

    seed: Seed
    problems: list[str] = attrs.field(factory=list)

    def add(self, record: RunRecord | None, what: str) -> None:
        where = "" if record is None else (
            f" execution {record.execution_id}, {record.scenario.describe()}:"
        )  # fmt: skip
        self.problems.append(f"seed {self.seed.value},{where} {what}")

    def assert_none(self, summary: str) -> None:
        shown = "\n".join(self.problems[:SHOWN])
        more = len(self.problems) - SHOWN
        assert not self.problems, (
            f"{len(self.problems)} invariant violations, {self.seed}; {summary}\n{shown}"
            + (f"\n… and {more} more" if more > 0 else "")
        )


def judge(
    verdict: Verdict, records: Iterable[RunRecord], stored: Mapping[str, StoredRun], expect: Expect
) -> None:
    """Check every run of `records` against what the store holds (`stored`, by id)."""
    for record in records:
        if not _started(verdict, record, expect):
            continue
        assert record.execution_id is not None
        run = stored.get(record.execution_id)
        if run is None:
            verdict.add(record, "the store holds no such execution")
            continue
        for what in (
            stored_stream_problems(run)
            + outcome_problems(record, run, expect)
            + log_problems(run, record.scenario.graph)
            + [p for reading in record.readings for p in reading_problems(reading, run, expect)]
        ):
            verdict.add(record, what)


def _started(verdict: Verdict, record: RunRecord, expect: Expect) -> bool:
    """Whether the starter got a run going (else whether it was allowed not to)."""
    starter = record.starter
    if starter.status == 200 and starter.events and starter.events[0].name == "start":
        return True
    if expect.refused(starter.status, starter.answer, starter.sent_at, starter.answered_at):
        return False
    if expect.cut_short(starter.sent_at, starter.ended_at) and (
        starter.status is None or not starter.events
    ):
        return False
    when = expect.when(starter.sent_at, starter.answered_at)
    verdict.add(
        record, f"the run did not start: {starter.describe()}{when}, answer {starter.answer!r}"
    )
    return False


def stored_stream_problems(run: StoredRun) -> list[str]:
    """The stored events: 1..n, `start` first, one terminal event, last, matching the row; each
    node started once, ended once, and none started once the run's end was decided."""
    problems: list[str] = []
    seqs = [event.seq for event in run.events]
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"stored ids are not 1..{len(seqs)}: {seqs}")
    if not run.events or run.events[0].name != "start":
        problems.append(f"the first stored event is not `start`: {run.events[:1]}")
    terminals = [event for event in run.events if event.terminal]
    if len(terminals) != 1 or not run.events[-1].terminal:
        names = [event.name for event in run.events]
        problems.append(f"{len(terminals)} stored terminal events, the last event is: {names}")
    if run.status == "RUNNING":
        problems.append("still RUNNING")
    elif terminals:
        problems += _terminal_problems(run, terminals[-1])
    problems += _node_problems(run)
    return problems


def _terminal_problems(run: StoredRun, terminal: Event) -> list[str]:
    """The terminal event says what the stored row says."""
    problems = []
    if terminal.name != TERMINAL_EVENT[run.status]:
        problems.append(f"stored status {run.status} but terminal event `{terminal.name}`")
    data = terminal.json()
    expected = {
        "executionId": run.execution_id,
        "success": run.status == "COMPLETED",
        "cancelled": run.status == "CANCELLED",
        "error": run.error,
    }
    if run.status == "COMPLETED":
        expected["output"] = run.output
    said = {key: data.get(key) for key in expected}
    if said != expected:
        problems.append(f"the terminal event says {said}, the stored row {expected}")
    return problems


def _node_problems(run: StoredRun) -> list[str]:
    """Each node starts once and ends once; in a CANCELLED run none starts once a node was
    stopped (README: "no further node starts")."""
    problems: list[str] = []
    started: dict[str, int] = {}
    completed: set[str] = set()
    stopped: Event | None = None  # the first node_complete that says `cancelled`
    for event in run.events:
        if event.name == "node_start":
            node_id = event.json()["nodeId"]
            if node_id in started:
                problems.append(
                    f"node {node_id} started twice (ids {started[node_id]}, {event.seq})"
                )
            if stopped is not None and run.status == "CANCELLED":
                problems.append(
                    f"node {node_id} started (id {event.seq}) after the run was stopped"
                    f" (id {stopped.seq}: node {stopped.json()['nodeId']} cancelled); the"
                    f" stored events: {trail(run.events)}"
                )
            started[node_id] = event.seq
        elif event.name == "node_complete":
            log = event.json()
            node_id = log["nodeId"]
            if node_id not in started or node_id in completed:
                problems.append(f"node_complete of {node_id} (id {event.seq}) without its start")
            completed.add(node_id)
            if log["status"] == "cancelled":
                stopped = stopped or event
    unfinished = sorted(set(started) - completed)
    if unfinished and run.status != "INTERRUPTED":
        problems.append(f"nodes started and never completed in a {run.status} run: {unfinished}")
    return problems


def trail(events: Iterable[Event]) -> str:
    """Events in short: `id name [node status]`, for a failure message."""
    shown = []
    for event in events:
        data = event.json()
        node = data.get("nodeId", "") if isinstance(data, dict) else ""
        status = data.get("status", "") if event.name == "node_complete" else ""
        shown.append(" ".join(str(part) for part in (event.seq, event.name, node, status) if part))
    return "; ".join(shown)


def reading_problems(reading: Reading, run: StoredRun, expect: Expect) -> list[str]:
    """What one client received: contiguous ids from its Last-Event-ID on, each identical to the
    stored event, at most one terminal event and it last, exactly one when read to its end."""
    problems = [f"{reading.describe()}: malformed frame {m}" for m in reading.malformed]
    cut_short = expect.cut_short(reading.sent_at, reading.ended_at)
    if reading.broken is not None and not cut_short:
        return [*problems, f"{reading.describe()}: the connection failed"]
    if reading.status == 204:
        last = run.events[-1].seq if run.events else 0
        if reading.role != "observer" or last > reading.after or run.status == "RUNNING":
            problems.append(f"{reading.describe()}: 204, but the store has events up to {last}")
        return problems
    if expect.refused(reading.status, reading.answer, reading.sent_at, reading.answered_at):
        return problems  # a 503 while the store failed, as for any call that needs it
    if reading.status not in (200, None) or (reading.status is None and not cut_short):
        problems.append(f"{reading.describe()}: answered {reading.answer!r}")
        return problems
    seqs = [event.seq for event in reading.events]
    if seqs != list(range(reading.after + 1, reading.after + 1 + len(seqs))):
        problems.append(
            f"{reading.describe()}: ids not contiguous from {reading.after + 1}: {seqs}"
        )
    for event in reading.events:
        if run.event(event.seq) != event:
            stored = run.event(event.seq)
            problems.append(
                f"{reading.describe()}: received id {event.seq} `{event.name}` {event.data[:300]}"
                f" but the store holds {stored and (stored.name, stored.data[:300])}"
            )
    terminals = [event.seq for event in reading.events if event.terminal]
    if len(terminals) > 1 or (terminals and terminals[-1] != seqs[-1]):
        problems.append(f"{reading.describe()}: terminal events at ids {terminals}")
    if reading.ended_by_server and len(terminals) != 1:
        problems.append(f"{reading.describe()}: read to its end without one terminal event last")
    if not (reading.ended_by_server or reading.left or reading.broken or cut_short):
        problems.append(f"{reading.describe()}: never ended")
    return problems


def outcome_problems(record: RunRecord, run: StoredRun, expect: Expect) -> list[str]:
    """The outcome is the graph's, CANCELLED when a Stop or a disconnect may have caused it, or
    INTERRUPTED exactly when its server was killed with it in flight; the nodes that ran are the
    graph's; the Stops were answered as api.md says."""
    scenario = record.scenario
    graph, prediction = scenario.graph, scenario.graph.predict(scenario.body)
    problems = _stop_problems(record, expect)
    if run.status == "RUNNING":
        return problems
    allowed = {prediction.status}
    if any(stop.status == 202 for stop in record.stops) or (
        record.starter.left and not graph.continue_on_disconnect
    ):
        allowed.add("CANCELLED")
    if run.execution_id in expect.interrupted:
        allowed = {"INTERRUPTED"}
    if run.status not in allowed:
        problems.append(
            f"ended {run.status} (error {run.error!r}), expected one of {sorted(allowed)};"
            f" prediction {prediction.status}, live {sorted(prediction.live)}"
        )
    if run.status == "CANCELLED" and run.error != CANCELLED_BY_USER:
        problems.append(f"CANCELLED with error {run.error!r}")
    if run.status == "INTERRUPTED" and run.error != INTERRUPTED:
        problems.append(f"INTERRUPTED with error {run.error!r}")
    if run.background and not (graph.continue_on_disconnect and record.starter.left):
        problems.append("stored as a background run, though no one left a run that goes on")
    return problems + _ran_problems(run, prediction)


def _stop_problems(record: RunRecord, expect: Expect) -> list[str]:
    """202 CANCELLING (or INTERRUPTED, for the run of a dead process), or 409 once it ended."""
    problems = []
    interrupted = record.execution_id in expect.interrupted
    allowed = {"CANCELLING", "INTERRUPTED"} if interrupted else {"CANCELLING"}
    for stop in record.stops:
        said = stop.json_field("status")
        expected = {"executionId": record.execution_id, "status": said}
        if stop.status == 202 and said in allowed and stop.answer == expected:
            continue
        if stop.status == 409 and stop.json_field("code") == "conflict":
            continue
        if stop.status == 0 and expect.cut_short(stop.sent_at, stop.answered_at):
            continue
        if expect.refused(stop.status, stop.answer, stop.sent_at, stop.answered_at):
            continue
        problems.append(f"Stop answered {stop.status} {stop.answer}")
    return problems


def _ran_problems(run: StoredRun, prediction: Prediction) -> list[str]:
    """The nodes that ran: only live ones; in a COMPLETED run all of them, each ending as the
    graph says; in a FAILED run, one that fails the run errored."""
    completed = {e.json()["nodeId"]: e.json()["status"] for e in run.events
                 if e.name == "node_complete"}  # fmt: skip
    started = {e.json()["nodeId"] for e in run.events if e.name == "node_start"}
    problems = []
    if dead := sorted(started - prediction.live):
        problems.append(f"nodes ran whose paths were dead: {dead}")
    if run.status == "COMPLETED" and completed != dict(prediction.node_status):
        problems.append(
            f"COMPLETED with node statuses {completed}, expected {dict(prediction.node_status)}"
        )
    if run.status == "FAILED":
        failed = [n for n, status in completed.items() if status == "error"
                  and n in prediction.strict_failers]  # fmt: skip
        if not failed or not any(f"({node_id})" in (run.error or "") for node_id in failed):
            problems.append(
                f"FAILED with error {run.error!r}, but no node that fails the run errored"
                f" (node statuses {completed}, strict failers {sorted(prediction.strict_failers)})"
            )
    return problems


def stored_log_problems(run: StoredRun, stored: StoredLog) -> list[str]:
    """A log stored on its own is a skipped node's; any other is the `node_complete` event of
    the same node."""
    if stored.event_seq is None:
        status = None if stored.value is None else stored.value.get("status")
        return [] if status == "skipped" else [f"{stored.node_id}'s own log says {status}"]
    event = run.event(stored.event_seq)
    if event is None:
        return [f"{stored.node_id}'s log is event {stored.event_seq}, which is not stored"]
    if event.name != "node_complete" or event.json().get("nodeId") != stored.node_id:
        what = f"{event.name} of {event.json().get('nodeId')}"
        return [f"{stored.node_id}'s log is event {stored.event_seq}, the {what}"]
    return []


def log_problems(run: StoredRun, graph: RandomGraph) -> list[str]:
    """The history: one log per node (the logs its process stored, if it died); a node that
    ran has its `node_complete` as its log, a skipped one a log of its own; `skipped` for a node
    that never started."""
    problems = []
    logs: dict[str, Any] = {}
    for stored in run.logs:
        problems += stored_log_problems(run, stored)
        if stored.value is None:
            continue
        if stored.node_id in logs:
            problems.append(f"two logs of node {stored.node_id}")
        logs[stored.node_id] = stored.value
    if run.status not in ("INTERRUPTED", "RUNNING") and sorted(logs) != sorted(graph.node_ids):
        problems.append(f"logs of nodes {sorted(logs)}, expected one of each of {graph.node_ids}")
    started = {e.json()["nodeId"] for e in run.events if e.name == "node_start"}
    for node_id, log in logs.items():
        if node_id not in started and log["status"] != "skipped":
            problems.append(f"node {node_id} never started, but its log says {log['status']}")
    return problems


def tally(records: Iterable[RunRecord], stored: Mapping[str, StoredRun]) -> str:
    """How the round went, in one line: runs by outcome, clients by behaviour."""
    records = list(records)
    outcomes: dict[str, int] = {}
    for record in records:
        run = stored.get(record.execution_id or "")
        key = run.status if run else f"not started ({record.starter.status})"
        outcomes[key] = outcomes.get(key, 0) + 1
    readings = [reading for record in records for reading in record.readings]
    return (
        f"{len(records)} runs {dict(sorted(outcomes.items()))};"
        f" {sum(r.role == 'observer' for r in readings)} observers,"
        f" {sum(len(record.stops) for record in records)} Stops,"
        f" {sum(r.left for r in readings)} clients left,"
        f" {sum(len(r.events) for r in readings)} events received"
    )
