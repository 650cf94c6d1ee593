"""Vigil's embedded store: per-tenant Delta Lake tables queried with DuckDB.

See ``store.py`` for the API, ``layout.py`` for the files, ``txn.py`` for crash safety,
``samples.py`` for the last-write-wins rule, ``catalog.py`` for the series catalog.
"""

from vigil.store.layout import StoreError
from vigil.store.samples import LONG_SCHEMA
from vigil.store.store import Store

__all__ = ["LONG_SCHEMA", "Store", "StoreError"]
