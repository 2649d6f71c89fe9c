"""The store's schema revisions, oldest first, in one line of history.

Writing a revision: copy the newest file to ``vNNNN_what.py``, set ``revision`` to the next
number (``"0003"``) and ``down_revision`` to the newest, write its operations out explicitly
(tables and names as literals, frozen: never built from today's
:data:`~cxprobe.store.schema.metadata`, which moves on), alter tables with
``op.batch_alter_table`` (SQLite recreates them; PostgreSQL alters them in place), update
:data:`~cxprobe.store.schema.metadata` to the result and
:data:`~cxprobe.store.migrations.HEAD_REVISION` to the number. A released revision is never
edited. ``tests/unit/test_migrations.py`` checks that the revisions build exactly the metadata.

The number is also written to the legacy ``schema_version`` table (``env.py``), which is all a
cxprobe from before Alembic reads: such a monitor refuses a store upgraded beyond it.
"""
