"""SQLite storage: connections with the hub's pragmas, migrations, backups."""

from edge.storage.db import Database, connect, transaction

__all__ = ["Database", "connect", "transaction"]
