"""Rebuilding a read model from the event log, beside the live one, then switching over.

1. The view's tables are created afresh in a shadow schema and the whole log is replayed
   into them in large batches (one transaction per batch), while the live tables keep
   answering reads. Secondary indexes are built after the replay, not maintained during it.
2. Holding the follower's lock (no catch-up in this process) the shadow catches up with
   the head of the log, then one transaction — holding the view's advisory lock, so no
   other process applies events meanwhile — drops the live tables and moves the shadow
   ones into their place, tracking table included.
3. The follower forgets its position and catches up from the new tables' position.
Events a follower in another process applied to the old tables after the shadow's last
catch-up are simply applied again to the new ones: their tracking position says so.
"""

from __future__ import annotations

import time
from typing import Any

from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Identifier

from evalledger.projections.follower import ProjectionFollower, gc_paused

REBUILD_BATCH = 2000


def _drop_secondary_indexes(store: PostgresDatastore, schema: str) -> list[str]:
    """Drop the shadow tables' indexes other than primary keys (the bulk replay's lookups
    use those), returning their definitions to create once the replay is done: building
    an index once is cheaper than maintaining it row by row, and without the items' seq
    index (which holds valid_to) closing a revision can be a HOT update."""
    with store.transaction(commit=True) as curs:
        curs.execute(
            "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition"
            " FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = %s AND NOT i.indisprimary AND NOT i.indisunique",
            (schema,),
        )
        found = curs.fetchall()
        for row in found:
            curs.execute(SQL("DROP INDEX {}").format(SQL(row["name"])))
    return [row["definition"] for row in found]


def rebuild(follower: ProjectionFollower, conninfo_params: Any) -> dict[str, Any]:
    live = follower.view
    schema = live.schema
    shadow_schema = f"{schema}_rebuild"[:63]
    tables = [*live.read_model_tables, live.tracking_table_name]
    started = time.perf_counter()
    shadow_store = PostgresDatastore(
        dbname=conninfo_params.dbname, host=conninfo_params.host, port=conninfo_params.port,
        user=conninfo_params.user, password=conninfo_params.password, pool_size=2, schema=shadow_schema,
    )
    try:
        with shadow_store.transaction(commit=True) as curs:
            curs.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(shadow_schema)))
            curs.execute(SQL("CREATE SCHEMA {}").format(Identifier(shadow_schema)))
        shadow = type(live)(shadow_store, tracking_table_name=live.tracking_table_name, other_views_schema=schema)
        shadow.create_table()
        deferred = _drop_secondary_indexes(shadow_store, shadow_schema)
        replay = ProjectionFollower(name=f"{follower.name}-rebuild", app=follower.app, view=shadow,
                                    topics=follower.topics, conninfo=follower.conninfo, batch_size=REBUILD_BATCH)
        with gc_paused():
            replay.catch_up()
        with shadow_store.transaction(commit=True) as curs:
            for definition in deferred:
                curs.execute(definition)
        with follower.paused():
            position = replay.catch_up()
            with shadow_store.transaction(commit=True) as curs:
                curs.execute("SELECT pg_advisory_xact_lock(%s)", (live.advisory_key,))
                for table in tables:
                    curs.execute(SQL("DROP TABLE IF EXISTS {}.{}").format(Identifier(schema), Identifier(table)))
                    curs.execute(SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(
                        Identifier(shadow_schema), Identifier(table), Identifier(schema)))
            follower.forget_position()
        seconds = time.perf_counter() - started
    finally:
        with shadow_store.transaction(commit=True) as curs:
            curs.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(shadow_schema)))
        shadow_store.close()
    events = replay.applied
    return {"projection": follower.name, "position": position, "events": events, "seconds": round(seconds, 3),
            "eventsPerSecond": round(events / seconds) if seconds else None}
