"""The evidence store's Alembic migrations: ``env.py`` and one file per revision in
``versions/``. Run by :mod:`cxprobe.store.migrations`, never by an ``alembic.ini``."""
