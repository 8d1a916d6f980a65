"""FlowTrux benchmarks: `python -m bench.cancel_latency`, `python -m bench.engine_cost`."""
