"""The read side: projections that turn the event log into PostgreSQL tables, and the
queries that read those tables."""
