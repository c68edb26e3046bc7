"""Moving items in and out: CSV, JSON and JSONL imports and exports."""
