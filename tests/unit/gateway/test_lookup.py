"""What a task path names: a uid is told from a name by its form (pure part of lookup.py)."""

from __future__ import annotations

import uuid

import pytest

from asynctask_gateway import patterns
from asynctask_gateway.lookup import is_uid


def test_a_kubernetes_uid_is_a_uid_and_also_a_valid_name() -> None:
    uid = str(uuid.uuid4())
    assert is_uid(uid)
    # A uid is a valid path segment for the task routes: the name pattern admits it.
    assert patterns.matches(patterns.NAME_PATTERN, uid)


@pytest.mark.parametrize(
    "name",
    [
        "h1",
        "resize-1",
        "0a1b2c3d",
        "320AC78E-7042-4900-B38E-F1F1F1EA4D3A",
        "7f525dc9-f143-48d3-9b6e-a4d2e6aac596-x",
        "",
    ],
)
def test_names_are_not_uids(name: str) -> None:
    assert not is_uid(name)
