"""Everything a workflow sends out: one guarded HTTP client."""
