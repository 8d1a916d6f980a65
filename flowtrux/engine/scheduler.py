"""The scheduler: one nursery per run, one cancel scope per node.

A node starts once every incoming edge is settled and at least one of them is live; a node whose
incoming edges are all dead is skipped, and so is what only it feeds. Independent branches run
concurrently, up to a per-run limit. The scheduler emits what happens through a plain callable and
never waits on it, so it can report a node's end even while its run is being cancelled.
"""

from __future__ import annotations

import logging
import traceback
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from flowtrux.engine.deltas import Deltas
from flowtrux.engine.errors import NodeError
from flowtrux.engine.events import NodeCompleted, NodeEvent, NodeSkipped, NodeStarted
from flowtrux.engine.graph import Edge, Graph, Node
from flowtrux.engine.logs import ExecutionLog
from flowtrux.engine.nodes import NODE_TYPES, NodeContext, NodeResult
from flowtrux.engine.sizes import Sizes
from flowtrux.engine.states import NODE_TRANSITIONS, NodeStatus, transition
from flowtrux.outbound.client import Exchange, Outbound
from flowtrux.outbound.secrets import Secrets

logger = logging.getLogger(__name__)

NOT_STARTED = "not started: the run ended first"
MAX_ERROR_CHARS = 2_000  # of a node's error: a message may echo what it read

Emit = Callable[[NodeEvent], None]
Ready = Callable[[], Awaitable[None]]


async def _always_ready() -> None:
    pass


@attrs.frozen
class Limits:
    run_timeout_s: float = 900.0
    max_concurrent_nodes: int = 16
    max_output_bytes: int = 4 * 1024 * 1024  # a node's output, as compact JSON
    max_run_log_bytes: int = 64 * 1024 * 1024  # its nodes' inputs, outputs and what logs tell


class RunFailed(Exception):
    """The run failed: a node with `onError: fail` errored, or the run timed out."""


async def execute(
    graph: Graph,
    body: Mapping[str, Any],
    emit: Emit,
    limits: Limits,
    ready: Ready = _always_ready,
    outbound: Outbound | None = None,
) -> Any:
    """Run `graph` with `body` as the trigger's body and return the run's output.

    `ready` is awaited before each node starts: the listener's back-pressure. `outbound` is the
    client `http` and `agent` nodes send with; without it they fail. Every node ends
    with exactly one log: nodes that never started (a dead path, or a run that ended first) are
    emitted as skipped. Raises RunFailed. If the caller's scope is cancelled, each running node
    emits its log with status `cancelled`, no further node starts, and the cancellation
    propagates (from the run's nursery, so possibly inside an exception group, which the
    cancelled scope absorbs as usual). Checkpoints.
    """
    return await _Run(graph, body, emit, limits, ready, outbound).execute()


@attrs.frozen
class _Attempts:
    """How a node's attempts ended: a result, or the error of the last attempt (and the debug
    fields it reported, with their size in the log)."""

    result: NodeResult | None = None
    error: str | None = None
    debug: Mapping[str, Any] = attrs.field(factory=dict)
    debug_bytes: int = 0
    cancelled: bool = False  # in a backoff, after `error`


@attrs.define(eq=False)
class _Run:
    graph: Graph
    body: Mapping[str, Any]
    emit: Emit
    limits: Limits
    ready: Ready
    outbound: Outbound | None
    _statuses: dict[str, NodeStatus] = attrs.field(init=False)
    _waiting: dict[str, int] = attrs.field(init=False)  # incoming edges not yet settled
    _inputs: defaultdict[str, dict[str, Any]] = attrs.field(init=False)  # live inputs so far
    _scope: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _attempts_made: dict[str, int] = attrs.field(factory=dict, init=False)
    _cut_short: dict[str, _Attempts] = attrs.field(factory=dict, init=False)  # in a backoff
    _failure: RunFailed | None = attrs.field(default=None, init=False)
    _nursery: trio.Nursery = attrs.field(init=False)
    _limiter: trio.CapacityLimiter = attrs.field(init=False)
    _sizes: Sizes = attrs.field(init=False)
    _logged: int = attrs.field(default=0, init=False)  # bytes of the nodes' logs so far

    def __attrs_post_init__(self) -> None:
        self._statuses = {node.id: NodeStatus.PENDING for node in self.graph.nodes}
        self._waiting = {node_id: len(edges) for node_id, edges in self.graph.incoming.items()}
        self._inputs = defaultdict(dict)
        self._limiter = trio.CapacityLimiter(self.limits.max_concurrent_nodes)
        self._sizes = Sizes(self.limits.max_output_bytes)

    async def execute(self) -> Any:
        trigger = self.graph.trigger
        static_data = trigger.config.get("staticData", {})
        self._inputs[trigger.id] = {"body": dict(self.body), "staticData": static_data}
        try:
            with trio.move_on_after(self.limits.run_timeout_s) as run_timer:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._run_node, trigger)
        finally:
            self._skip_unstarted()
        if self._failure is not None:
            raise self._failure
        if run_timer.cancelled_caught:
            raise RunFailed(f"the run timed out after {self.limits.run_timeout_s:g} s")
        return self._output()

    def _output(self) -> Any:
        """The run's output: the `response` node's when one ran (the first in the document),
        else the one sink's that ran, else the outputs of the sinks that ran by node id."""
        ran = [node for node in self.graph.nodes if node.id in self._scope]
        for node in ran:
            if node.type == "response":
                return self._scope[node.id]["output"]
        sinks = {node.id: self._scope[node.id]["output"] for node in ran if self._is_sink(node)}
        return next(iter(sinks.values())) if len(sinks) == 1 else sinks

    def _is_sink(self, node: Node) -> bool:
        return not self.graph.outgoing[node.id]

    async def _run_node(self, node: Node) -> None:
        """Run `node`, then, in this task and slot, a node it made ready (a chain runs in one
        task: a task per node cost two fifths of a transform node in the engine)."""
        # Acquiring checkpoints: a node started by a run that is being cancelled never begins.
        async with self._limiter:
            next_node: Node | None = node
            while next_node is not None:
                await self.ready()
                # A slot or `ready` may have been granted in the step that cancelled the run:
                # a node that was not running when the run was stopped never starts.
                await trio.lowlevel.checkpoint_if_cancelled()
                log = await self._execute(next_node)
                # Holding the slot: a failed run hands it to nobody.
                next_node = self._settle(next_node, log)
                if next_node is not None:
                    await trio.lowlevel.checkpoint()  # as acquiring a slot would

    async def _execute(self, node: Node) -> ExecutionLog:
        inputs = self._inputs.pop(node.id)
        exchange = Exchange()
        deltas = Deltas(node.id, exchange.secrets, self.emit)
        context = NodeContext(
            node, inputs, self._scope, self._sizes, self.outbound, deltas.send, exchange
        )
        self._set_status(node, NodeStatus.RUNNING)
        self.emit(NodeStarted.of(node))
        started_at, started = datetime.now(UTC), trio.current_time()
        attempts, refused = None, None
        try:
            refused = await self._input_refused(context)
            attempts = (
                _Attempts(error=refused) if refused else await self._attempts(context, deltas)
            )
        finally:
            # No `attempts` means we are being cancelled: the log says so, and Cancelled goes on.
            elapsed = trio.current_time() - started
            attempts_made = self._attempts_made.get(node.id, 0)
            logged_input = None if refused else inputs  # what is too large is not logged either
            if attempts is None and (failed := self._cut_short.pop(node.id, None)):
                attempts = self._cancelled_in_backoff(failed, attempts_made)
            log = _log(context, logged_input, attempts, attempts_made, started_at, elapsed)
            self._set_status(node, log.status)
            self.emit(NodeCompleted(log))
        return log

    async def _attempts(self, context: NodeContext, deltas: Deltas) -> _Attempts:
        """Attempt the node as its `retry` says: after an error that another attempt could
        mend, waiting its backoff (or longer, should the error ask for it)."""
        node, failed = context.node, _Attempts(error="")
        for attempt in range(1, node.retry.max_attempts + 1):
            self._attempts_made[node.id] = deltas.attempt = attempt
            try:
                result, logged = await _attempt(context)
            except Exception as exc:  # a node error, a timeout, or a bug in a node type
                deltas.flush()
                failed = await _failed(context, exc)
                if isinstance(exc, NodeError) and not exc.retryable:
                    break
                pause_s = max(node.retry.backoff_s(attempt), _least_wait_s(exc))
            else:  # no attempt more could make the run's logs smaller
                deltas.flush()
                over = self._count_logged(logged)
                return _Attempts(result=result) if over is None else _Attempts(error=over)
            if attempt < node.retry.max_attempts:
                try:
                    await trio.sleep(pause_s)
                except trio.Cancelled:
                    self._cut_short[node.id] = failed
                    raise
        if failed.debug and self._count_logged(failed.debug_bytes) is not None:
            return attrs.evolve(failed, debug={})  # the error is logged, what it tells is not
        return failed

    def _cancelled_in_backoff(self, failed: _Attempts, attempts_made: int) -> _Attempts:
        """The run was cancelled while the node waited to try again: its log says why it was
        waiting (a 429's Retry-After, say), and what that attempt told."""
        error = _shortened(
            f"cancelled while waiting to try again; attempt {attempts_made} had failed:"
            f" {failed.error}"
        )
        debug = failed.debug if self._count_logged(failed.debug_bytes) is None else {}
        return _Attempts(error=error, debug=debug, cancelled=True)

    async def _input_refused(self, context: NodeContext) -> str | None:
        """Why the node cannot run with its input (its predecessors' outputs, which its log
        holds), or None."""
        try:
            logged = await context.sizes.check(context.inputs, "its input (what came in)")
        except NodeError as exc:
            return str(exc)
        return self._count_logged(logged)

    def _count_logged(self, size: int) -> str | None:
        """Count `size` bytes more of the run's logs; why the node cannot go on when the run's
        logs are then over their limit, else None."""
        self._logged += size
        limit = self.limits.max_run_log_bytes
        if self._logged <= limit:
            return None
        return (
            f"the run's logs are larger than {limit:,} bytes of JSON, the limit set by"
            " FLOWTRUX_MAX_RUN_LOG_BYTES"
        )

    def _settle(self, node: Node, log: ExecutionLog) -> Node | None:
        """Record how `node` ended and settle its edges; the first node that made ready, for
        the caller to run, after starting the others in tasks of their own."""
        if log.status is NodeStatus.ERROR and node.on_error == "fail":
            self._failure = RunFailed(f"node '{node.name}' ({node.id}) failed: {log.error}")
            self._nursery.cancel_scope.cancel()
            return None
        self._scope.setdefault(node.id, {})["output"] = log.output
        if node.type == "trigger":
            self._scope.setdefault("trigger", {})["data"] = log.output
        ready = self._release(
            (edge, _is_live(edge, node, log)) for edge in self.graph.outgoing[node.id]
        )
        for other in ready[1:]:
            self._nursery.start_soon(self._run_node, other)
        return ready[0] if ready else None

    def _release(self, settled: Iterable[tuple[Edge, bool]]) -> list[Node]:
        """Settle edges (live or dead); skip each target whose edges are all settled and dead.
        The targets whose edges are all settled and one of them live: ready to run."""
        ready: list[Node] = []
        todo = deque(settled)
        while todo:
            edge, live = todo.popleft()
            if live:
                self._inputs[edge.target][edge.source] = self._scope[edge.source]["output"]
            self._waiting[edge.target] -= 1
            if self._waiting[edge.target]:
                continue
            target = self.graph.by_id[edge.target]
            if edge.target in self._inputs:
                ready.append(target)
            else:
                self._skip(target, ExecutionLog.skipped(target))
                todo.extend((dead, False) for dead in self.graph.outgoing[target.id])
        return ready

    def _skip_unstarted(self) -> None:
        """The run has ended (failed, cancelled, timed out): log the nodes it never started."""
        for node in self.graph.nodes:
            if self._statuses[node.id] is NodeStatus.PENDING:
                self._skip(node, ExecutionLog.skipped(node, NOT_STARTED))

    def _skip(self, node: Node, log: ExecutionLog) -> None:
        self._set_status(node, NodeStatus.SKIPPED)
        self.emit(NodeSkipped(log))

    def _set_status(self, node: Node, status: NodeStatus) -> None:
        self._statuses[node.id] = transition(NODE_TRANSITIONS, self._statuses[node.id], status)


def _is_live(edge: Edge, node: Node, log: ExecutionLog) -> bool:
    """Whether `edge` carries `node`'s output on. A condition that errored (`onError:
    continue`) chose no branch: nothing after it runs."""
    if node.type == "condition":
        return log.status is NodeStatus.SUCCESS and edge.branch in (None, log.output)
    return True


async def _attempt(context: NodeContext) -> tuple[NodeResult, int]:
    """The node's result, scrubbed of the secrets it sent, and the bytes its log will hold of
    it."""
    result = await _run_in_time(context)
    if secrets := context.exchange.secrets:  # a walk of the whole output: 0.5 s for 4 MiB
        result = await trio.to_thread.run_sync(_scrubbed, result, secrets, abandon_on_cancel=True)
    try:
        logged = await context.sizes.check(result.output)
    except NodeError as exc:  # the log still tells what the node did (its requests)
        raise NodeError(str(exc), retryable=exc.retryable, debug=result.debug) from None
    logged += await context.sizes.check(result.debug, "what its log tells of it")
    return result, logged


async def _run_in_time(context: NodeContext) -> NodeResult:
    run = NODE_TYPES[context.node.type].run
    if context.node.timeout_ms is None:
        return await run(context)
    with trio.fail_after(context.node.timeout_ms / 1000):
        return await run(context)


def _scrubbed(result: NodeResult, secrets: Secrets) -> NodeResult:
    return NodeResult(secrets.scrub(result.output), secrets.scrub(result.debug))


async def _failed(context: NodeContext, exc: Exception) -> _Attempts:
    """An attempt's error, and what it tells (when its log can hold it), scrubbed of secrets."""
    secrets = context.exchange.secrets
    error = secrets.scrub_text(_describe(exc, context.node, secrets))
    told = secrets.scrub(exc.debug) if isinstance(exc, NodeError) else {}
    try:
        size = await context.sizes.check(told, "what its log tells of it")
    except NodeError:
        return _Attempts(error=error)
    return _Attempts(error=error, debug=told, debug_bytes=size)


def _least_wait_s(exc: Exception) -> float:
    return exc.retry_after_s if isinstance(exc, NodeError) else 0.0


def _describe(exc: Exception, node: Node, secrets: Secrets) -> str:
    if isinstance(exc, NodeError):
        return _shortened(str(exc))
    if isinstance(exc, trio.TooSlowError):
        return f"timed out after {node.timeout_ms} ms"
    trace = secrets.scrub_text("".join(traceback.format_exception(exc)))
    logger.error("node %s (%s) raised an unexpected error\n%s", node.id, node.type, trace)
    return _shortened(f"unexpected error: {type(exc).__name__}: {exc}")


def _shortened(text: str) -> str:
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return f"{text[: MAX_ERROR_CHARS - 40]}… ({len(text):,} characters in all)"


def _log(
    context: NodeContext,
    logged_input: Any,
    attempts: _Attempts | None,
    attempts_made: int,
    started_at: datetime,
    elapsed_s: float,
) -> ExecutionLog:
    node = context.node
    output: Any = None
    error: str | None = None
    debug: Mapping[str, Any] = {}
    if attempts is None:
        status, error = NodeStatus.CANCELLED, "cancelled"
    elif attempts.cancelled:
        status, error, debug = NodeStatus.CANCELLED, attempts.error, attempts.debug
    elif attempts.result is None:
        status, error, debug = NodeStatus.ERROR, attempts.error, attempts.debug
        output = {"error": error} if node.on_error == "continue" else None
    else:
        status, output, debug = NodeStatus.SUCCESS, attempts.result.output, attempts.result.debug
    return ExecutionLog(
        node_id=node.id,
        node_name=node.name,
        node_type=node.type,
        status=status,
        input=logged_input,
        output=output,
        error=error,
        started_at=started_at,
        ended_at=datetime.now(UTC),
        duration_ms=round(elapsed_s * 1000),
        attempt=attempts_made,
        debug=debug,
    )
