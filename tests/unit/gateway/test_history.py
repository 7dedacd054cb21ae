"""The history list's query (pure): filters as bound SQL parameters, hostile input refused."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from asynctask_gateway.history import (
    HistoryQuery,
    decode_continue,
    encode_continue,
    keys_statement,
    rows_statement,
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
    sql = " AND ".join(query.conditions + query.labels + query.labels_key)
    assert "DROP" not in sql and "alice" not in sql and "team" not in sql  # all bound
    assert " AND ".join(query.conditions).count("%s") == len(query.params)
    assert " AND ".join(query.labels).count("%s") == len(query.label_params)
    assert " AND ".join(query.labels_key).count("%s") == len(query.label_params)
    assert query.params[0] == "q'; DROP TABLE asynctask_history; --"
    assert datetime(2026, 12, 4, 22, 0, tzinfo=UTC) in query.params
    assert json.dumps({"team": "a"}) in query.label_params
    assert ["prod", "stage"] in query.label_params
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


SELECTED = {
    "queue": "q",
    "phase": "Failed",
    "creator": "alice",
    "since": "2026-12-01T00:00:00Z",
    "labelSelector": "team=a,tier!=db,env in (prod,stage),!legacy,app",
}


def test_the_keys_step_reads_only_what_the_keyset_index_holds() -> None:
    after = (datetime(2026, 12, 4, tzinfo=UTC), "u9")
    query = HistoryQuery.parse(SELECTED)
    sql, params = keys_statement("ns", query, after, 101)
    assert sql.startswith("SELECT finished_at, uid FROM asynctask_history WHERE namespace = %s")
    # Only the index's columns: never the full labels (an index-only scan).
    words = set(re.findall(r"[a-z_]+", sql.replace("%s", "")))
    columns = words - {"asynctask_history", "coalesce", "any", "false", "jsonb"}
    index = {"namespace", "finished_at", "uid", "queue", "phase", "creator", "labels_key"}
    assert columns <= index and "labels_key" in columns, columns
    assert not re.search(r"\blabels\b", sql)
    # A row without the bounded copy is a candidate, whatever the selector says.
    assert "(labels_key IS NULL OR (" in sql
    assert sql.endswith("ORDER BY finished_at DESC, uid DESC LIMIT %s")
    assert sql.count("%s") == len(params)
    assert params == ["ns", *query.params, *after, *query.label_params, 101]


def test_the_keys_step_without_a_selector_or_a_start() -> None:
    sql, params = keys_statement("ns", HistoryQuery.parse({}), None, 11)
    assert "labels_key" not in sql and "<" not in sql
    assert params == ["ns", 11]


def test_the_rows_step_checks_every_condition_on_the_full_labels() -> None:
    query = HistoryQuery.parse(SELECTED)
    t1, t2 = datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 4, tzinfo=UTC)
    sql, params = rows_statement("ns", query, [(t2, "b"), (t1, "a")], "uid, labels")
    assert sql.startswith("SELECT uid, labels FROM asynctask_history WHERE namespace = %s")
    assert "labels_key" not in sql
    for condition in [*query.conditions, *query.labels]:
        assert condition in sql
    assert sql.count("%s") == len(params)
    # The keys' span bounds the partitions; the keys themselves as two arrays.
    assert params[:5] == ["ns", t1, t2, [t2, t1], ["b", "a"]]
    assert params[5:] == [*query.params, *query.label_params]
    assert sql.endswith("ORDER BY finished_at DESC, uid DESC")


def test_the_selector_is_the_same_on_either_labels_column() -> None:
    on_labels, params = selector_sql("a!=b, c notin (x), !d, e in (y)")
    on_key, key_params = selector_sql("a!=b, c notin (x), !d, e in (y)", "labels_key")
    assert key_params == params
    assert on_key == [c.replace("labels", "labels_key") for c in on_labels]
    with pytest.raises(ValueError, match="not a labels column"):
        selector_sql("a", "labels; DROP TABLE x")
