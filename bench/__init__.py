"""FlowTrux benchmarks: `python -m bench` runs them all; bench/README.md says what each measures."""
