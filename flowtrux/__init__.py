"""FlowTrux: run workflows, stream every node live, cancel correctly."""
