"""The write side: aggregates, their events, and the applications whose methods are commands."""
