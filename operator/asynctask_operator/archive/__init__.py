"""The history archive (issue 23): every finished task's whole record, kept in PostgreSQL.

An adapter room, like :mod:`apiserver` and :mod:`broker`: :mod:`record` turns an AsyncTask
object into the row it is archived as (pure), :mod:`schema` holds the versioned migrations
and the daily partitions' names (pure), :mod:`migrate` applies the migrations once under an
advisory lock, and :mod:`store` is the PostgreSQL adapter (psycopg 3 and its pool) the
operator's archiver writes through (``ports.ArchiveStore``). Nothing here is imported unless
the archive is configured (``ASYNCTASK_ARCHIVE_URL``), so the operator runs without psycopg.
"""
