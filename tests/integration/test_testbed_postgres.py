"""The test bed's PostgreSQL: a database per test, and an outage that keeps the data."""

from __future__ import annotations

from testbed import PostgreSQL


def test_each_test_gets_an_empty_database_that_survives_a_server_restart(
    postgres: PostgreSQL, database_url: str
) -> None:
    database = database_url.rsplit("/", 1)[1]
    assert (
        postgres.psql(database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        == "0\n"
    )
    postgres.psql(database, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
    postgres.stop_server()
    postgres.start_server()
    assert postgres.psql(database, "SELECT x FROM kept") == "7\n"
