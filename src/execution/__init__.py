"""Execution: targets (what a run calls), scorers (how outputs are judged), the registry
of user-defined ones, and the runner that drives a run."""
