"""What `/metrics` tells, in Prometheus' text format (prometheus-client).

One process counts in memory. `flowtrux serve --workers N` sets `PROMETHEUS_MULTIPROC_DIR` for
its workers before they start: each then writes its values to files there, and `/metrics` on any
worker adds up every worker's (prometheus-client's multiprocess mode; the open streams gauge is
the sum over the workers alive).
"""

import functools
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

runs_started = Counter("flowtrux_runs_started", "Runs started, by trigger.", ["trigger"])
runs_ended = Counter("flowtrux_runs_ended", "Runs ended, by status.", ["status"])
node_seconds = Histogram(
    "flowtrux_node_duration_seconds",
    "How long nodes ran, by type and status.",
    ["type", "status"],
    buckets=_SECONDS,
)
open_streams = Gauge(
    "flowtrux_open_streams", "Event streams open (execute/stream and /events).",
    multiprocess_mode="livesum",
)  # fmt: skip


@functools.cache  # a few node types and statuses: the labelled histogram, found once
def node_duration(node_type: str, status: str) -> Histogram:
    """How long nodes of `node_type` that ended with `status` ran."""
    return node_seconds.labels(node_type, status)


events_sent = Counter("flowtrux_events_sent", "Events written to streams.")
stop_seconds = Histogram(
    "flowtrux_stop_latency_seconds",
    "From a Stop reaching the process that runs the run to its CANCELLED end committed.",
    buckets=_SECONDS,
)
commit_records = Histogram(
    "flowtrux_journal_commit_records",
    "Records the journal wrote in one transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
)
commit_seconds = Histogram(
    "flowtrux_journal_commit_seconds", "How long one journal transaction took.", buckets=_SECONDS
)


def exposition() -> tuple[bytes, str]:
    """The metrics as Prometheus text, and its content type."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
