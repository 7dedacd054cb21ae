"""The PostgreSQL launcher's pure parts: its command lines, URLs and database names."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.postgres import SUPERUSER, as_user, checked_name, database_url, server_args


def test_server_listens_on_loopback_with_fsync_off_and_a_private_socket() -> None:
    args = server_args(Path("/b"), Path("/w/data"), 5999, Path("/w"))
    assert args[:7] == ["/b/postgres", "-D", "/w/data", "-p", "5999", "-k", "/w"]
    settings = dict(a.split("=", 1) for a in args[8::2])
    assert all(flag == "-c" for flag in args[7::2])
    assert settings["listen_addresses"] == "127.0.0.1"
    assert settings["fsync"] == "off"


def test_a_benchmark_s_settings_override_and_extend_the_test_bed_s() -> None:
    args = server_args(
        Path("/b"), Path("/w/data"), 5999, Path("/w"), {"shared_buffers": "1GB", "work_mem": "8MB"}
    )
    settings = dict(a.split("=", 1) for a in args[8::2])
    assert settings["shared_buffers"] == "1GB"
    assert settings["work_mem"] == "8MB"
    assert settings["fsync"] == "off"
    assert args.count("-c") == len(settings)


def test_root_runs_the_server_as_the_postgres_user_and_others_as_themselves() -> None:
    assert as_user(["initdb", "-D", "x"], 0) == [
        "runuser",
        "-u",
        "postgres",
        "--",
        "initdb",
        "-D",
        "x",
    ]
    assert as_user(["initdb", "-D", "x"], 1000) == ["initdb", "-D", "x"]


def test_database_url_names_the_superuser_on_loopback() -> None:
    assert database_url(5999, "t_1") == f"postgresql://{SUPERUSER}@127.0.0.1:5999/t_1"


@pytest.mark.parametrize("name", ["t_0a1b2c3d", "postgres", "_x"])
def test_plain_database_names_are_taken(name: str) -> None:
    assert checked_name(name) == name


@pytest.mark.parametrize("name", ["", "T1", "a-b", "a;DROP DATABASE x", "1abc", "a" * 64])
def test_names_that_would_need_quoting_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a test-bed database name"):
        checked_name(name)
