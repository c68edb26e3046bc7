"""Adapters: what talks to PostgreSQL and to keys. The database (embedded or configured),
the event store's recorder, the per-item content keys, the mapper that seals item content
with them (crypto-shredding), and the event transcoder."""
