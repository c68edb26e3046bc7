"""The bulk writer of a rebuild makes its tables while rows are already being folded for
them: nothing is sent before the tables exist, and when they cannot be made the load fails
with PostgreSQL's reason instead of hanging or committing half of it."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Composed, Identifier

from evalledger.adapters import database
from evalledger.projections.bulk import Writer
from evalledger.settings import Settings


@pytest.fixture
def store(settings: Settings) -> Iterator[PostgresDatastore]:
    c = database.parse_database_url(settings.database_url or "")
    store = PostgresDatastore(dbname=c.dbname, host=c.host, port=c.port, user=c.user, password=c.password,
                              pool_size=3, schema=settings.schema)
    yield store
    store.close()


def rows_of(settings: Settings, table: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database.parse_database_url(settings.database_url or "").conninfo) as conn:
        return conn.execute(SQL("SELECT * FROM {}.{} ORDER BY 1").format(
            Identifier(settings.schema), Identifier(table))).fetchall()


def test_rows_given_before_the_tables_exist_wait_for_them(store: PostgresDatastore, settings: Settings) -> None:
    schema = Identifier(settings.schema)
    table = SQL("{}.letters").format(schema)

    def make_tables(curs: psycopg.Cursor[object]) -> tuple[list[Composed], list[Composed]]:
        curs.execute(SQL("CREATE SCHEMA {}; CREATE TABLE {} (n integer, letter text)").format(schema, table))
        return ([SQL("CREATE UNIQUE INDEX letters_n ON {} (n)").format(table)],
                [SQL("ALTER TABLE {} ADD CONSTRAINT letters_pkey PRIMARY KEY USING INDEX letters_n").format(table)])

    writer = Writer(store, prepare=make_tables)
    for n in range(20):  # given at once, while the first writer is still making the tables
        writer.copy(table, ("n", "letter"), b"%d\t%s\n" % (n, bytes([97 + n])))
    writer.finish()

    assert rows_of(settings, "letters") == [(n, chr(97 + n)) for n in range(20)]
    with psycopg.connect(database.parse_database_url(settings.database_url or "").conninfo) as conn:
        constraint = conn.execute("SELECT contype FROM pg_constraint WHERE conname = 'letters_pkey'").fetchone()
    assert constraint == ("p",)


def test_tables_that_cannot_be_made_fail_the_load_with_the_reason(store: PostgresDatastore,
                                                                   settings: Settings) -> None:
    schema = Identifier(settings.schema)
    table = SQL("{}.letters").format(schema)
    with psycopg.connect(database.parse_database_url(settings.database_url or "").conninfo, autocommit=True) as conn:
        conn.execute(SQL("CREATE SCHEMA {}; CREATE TABLE {} (n integer, letter text)").format(schema, table))

    def make_tables(curs: psycopg.Cursor[object]) -> tuple[list[Composed], list[Composed]]:
        curs.execute(SQL("CREATE TABLE {} (n integer, letter text)").format(table))  # there already
        return [], []

    writer = Writer(store, prepare=make_tables)
    with pytest.raises(Exception, match="already exists"):
        for n in range(2000):  # more than the writer's queue holds: the copies must not block for good
            writer.copy(table, ("n", "letter"), b"%d\tx\n" % n)
        writer.finish()
    writer.abort()  # what bulk_load does when the load fails: returns once every writer has stopped
    assert all(not thread.is_alive() for thread in writer._threads)
    assert rows_of(settings, "letters") == []  # the rows would have fitted: none was committed
