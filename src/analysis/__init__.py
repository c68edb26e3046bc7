"""Statistics over runs: paired comparisons with significance, not just mean deltas."""
