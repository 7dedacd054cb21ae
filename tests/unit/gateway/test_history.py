"""The history list's query (pure): filters as bound SQL parameters, hostile input refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from asynctask_gateway.history import (
    HistoryQuery,
    decode_continue,
    encode_continue,
    selector_sql,
)


def test_filters_become_conditions_with_every_value_a_parameter() -> None:
    query = HistoryQuery.parse(
        {
            "queue": "q'; DROP TABLE asynctask_history; --",
            "phase": "Failed",
            "creator": "alice",
            "since": "2026-12-01T00:00:00Z",
            "until": "2026-12-05T00:00:00+02:00",
            "labelSelector": "team=a,tier!=db,env in (prod,stage),!legacy,app",
            "limit": "50",
        }
    )
    sql = " AND ".join(query.conditions)
    assert "DROP" not in sql and "alice" not in sql and "team" not in sql  # all bound
    assert sql.count("%s") == len(query.params)
    assert query.params[0] == "q'; DROP TABLE asynctask_history; --"
    assert datetime(2026, 12, 4, 22, 0, tzinfo=UTC) in query.params
    assert json.dumps({"team": "a"}) in query.params and ["prod", "stage"] in query.params
    assert query.limit == 50 and query.after is None


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"limit": "100000"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1e3"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": ""}, "until"),
        ({"phase": ""}, "phase"),
        ({"until": "2026-13-45T25:61:00Z"}, "until"),
        ({"since": "2026-12-05T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "after until"),
        ({"phase": "Sleeping"}, "phase"),
        ({"labelSelector": "a in (x"}, "selector"),
        ({"labelSelector": "=x"}, "selector"),
        ({"labelSelector": ",".join(f"k{i}=v" for i in range(21))}, "terms"),
        ({"labelSelector": "a" * 5000}, "too long"),
        ({"queue": "q" * 600}, "queue"),
        ({"creator": "nul\x00"}, "creator"),
        ({"continue": "not a token!"}, "continue"),
        ({"continue": "AAAA"}, "continue"),
    ],
)
def test_hostile_or_malformed_input_is_refused(params: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        HistoryQuery.parse(params)


def test_the_continue_token_is_the_last_rows_keyset() -> None:
    at = datetime(2026, 12, 5, 10, 0, 0, 123456, tzinfo=UTC)
    token = encode_continue(at, "u-1")
    assert decode_continue(token) == (at, "u-1")
    assert HistoryQuery.parse({"continue": token}).after == (at, "u-1")


def test_label_selector_terms_follow_kubernetes_meaning() -> None:
    conditions, params = selector_sql("a!=b, c notin (x), !d")
    # != and notin also match tasks without the label, as Kubernetes' selectors do.
    assert conditions == [
        "NOT labels @> %s::jsonb",
        "NOT coalesce(labels ->> %s = ANY(%s), false)",
        "NOT labels ? %s",
    ]
    assert params == ['{"a": "b"}', "c", ["x"], "d"]
    assert selector_sql("") == ([], [])
