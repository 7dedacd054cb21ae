"""The archive's schema: versioned migrations and the daily partitions' names (pure).

``asynctask_history`` is partitioned by range of ``finished_at``, one partition a day
(``asynctask_history_p20261205`` holds that UTC day). Retention drops whole partitions, a
catalog change that takes milliseconds whatever a day holds, never a table-wide ``DELETE``
(which would bloat the table and hold locks under load). The primary key is
``(uid, finished_at)``: a partitioned table's unique keys must include the partition key,
and a task's finish time never changes once it is terminal, so upserts keyed by the pair
are upserts keyed by uid.

Migrations are numbered and applied in order, each once (:mod:`migrate`); a released one
is never edited, a change is a new one.

Migration 2 adds ``labels_key``: the labels again, but only when their compact JSON text is
at most :data:`LABELS_KEY_MAX` bytes (NULL above, and on rows archived before it), and an
index on ``(namespace, finished_at, uid)`` carrying it with queue, phase and creator. A
label-selected page's keys come from that index alone (an index-only scan: no heap page
read for a row the selector drops); only the page's rows are then read whole. A B-tree
entry holds at most about 2.7 KB, hence the bound; a row whose copy is NULL is a candidate
the row read checks against its full ``labels`` (``docs/history.md``). Migration 3
backfills the copy on the rows archived before, in batches of table pages
(:func:`block_ranges`). Migration 4 replaces the GIN index on ``labels_key`` by one on
``(namespace, queue, phase, labels_key)`` (the ``btree_gin`` extension), so a label's
bitmap reads one namespace's matches, not every namespace's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

TABLE = "asynctask_history"
#: The key of the advisory lock migrations and partition changes run under.
LOCK_KEY = 0x41_53_59_4E_43_48  # "ASYNCH"
_PREFIX = f"{TABLE}_p"
#: The longest labels (compact JSON text, bytes) copied into ``labels_key``: well below a
#: B-tree entry's limit (about 2,700 bytes with the namespace, time and uid beside it).
LABELS_KEY_MAX = 1536


#: Migration 4's warning when ``btree_gin`` cannot be created (the operator logs it; SQL
#: text: no quote in it).
SCOPED_INDEX_MISSING = (
    "the btree_gin extension could not be created, so the label index "
    "stays unscoped by namespace (a label list reads its matches in every namespace); create it "
    "as a user with CREATE on the database, then run migration 4 again (docs/history.md)"
)

#: Table pages (8 KiB) per backfill batch: about 16,000 rows of 2 KB, one transaction each.
BACKFILL_PAGES = 4096


@dataclass(frozen=True)
class Migration:
    """``sql`` runs in one transaction with the ledger's record. With a ``backfill`` (an
    UPDATE of ``{partition}`` for the block range ``%s::tid`` to ``%s::tid``), the
    backfill then runs on every partition in batches of :data:`BACKFILL_PAGES` pages, each
    its own transaction, and the record comes last: a migration stopped halfway runs again
    whole, so its ``sql`` and backfill must be idempotent."""

    version: int
    name: str
    sql: str
    backfill: str = ""


_PAYLOADS = "".join(
    f"    {name} jsonb,\n    {name}_text text,\n"
    for name in ("spec", "request", "result", "error", "status", "annotations")
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "history table, partitioned by day of finish, and its listing indexes",
        f"""
CREATE TABLE {TABLE} (
    uid text NOT NULL,
    finished_at timestamptz NOT NULL,
    namespace text NOT NULL,
    name text NOT NULL,
    queue text,
    priority integer,
    phase text NOT NULL,
    reason text,
    message text,
    creator text,
    worker text,
    attempts integer,
    labels jsonb NOT NULL DEFAULT '{{}}',
    created_at timestamptz,
    queued_at timestamptz,
    scheduled_at timestamptz,
    started_at timestamptz,
    last_update_at timestamptz,
{_PAYLOADS}    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (uid, finished_at)
) PARTITION BY RANGE (finished_at);
-- The listings: a namespace's history newest first (keyset on finished_at, uid), narrowed
-- by queue and phase, by phase, by creator; one task's runs by name; labels by GIN.
CREATE INDEX {TABLE}_ns_time ON {TABLE} (namespace, finished_at DESC, uid DESC);
CREATE INDEX {TABLE}_ns_queue_phase_time
    ON {TABLE} (namespace, queue, phase, finished_at DESC, uid DESC);
CREATE INDEX {TABLE}_ns_phase_time ON {TABLE} (namespace, phase, finished_at DESC, uid DESC);
CREATE INDEX {TABLE}_ns_creator_time
    ON {TABLE} (namespace, creator, finished_at DESC, uid DESC);
CREATE INDEX {TABLE}_ns_name_time ON {TABLE} (namespace, name, finished_at DESC);
CREATE INDEX {TABLE}_labels ON {TABLE} USING gin (labels);
""",
    ),
    Migration(
        2,
        "labels_key: a bounded copy of the labels, and the keyset index carrying it",
        # ADD COLUMN without a default is a catalog change; existing rows keep NULL (no
        # backfill here: rewriting every row under the migration lock is not cheap), and
        # the reader checks such rows against their full labels. The new index has the
        # same keys as _ns_time, which it replaces.
        f"""
ALTER TABLE {TABLE} ADD COLUMN labels_key jsonb;
CREATE INDEX {TABLE}_ns_time_keys ON {TABLE} (namespace, finished_at DESC, uid DESC)
    INCLUDE (queue, phase, creator, labels_key);
DROP INDEX {TABLE}_ns_time;
-- A rare label over a long range: its keys from a bitmap of the copy's GIN index, OR-ed
-- with the (few) rows without a copy. It takes over from the GIN index on labels.
CREATE INDEX {TABLE}_labels_key ON {TABLE} USING gin (labels_key);
CREATE INDEX {TABLE}_ns_time_nokey ON {TABLE} (namespace, finished_at DESC, uid DESC)
    WHERE labels_key IS NULL;
DROP INDEX {TABLE}_labels;
""",
    ),
    Migration(
        3,
        "labels_key backfilled on the rows archived before migration 2, in batches",
        "",
        # The bound on jsonb's text form (", " and ": " between items: a few bytes longer
        # than the operator's compact JSON, so a row at the edge may keep NULL: still
        # correct, a NULL copy makes a row a candidate the rows step checks on its labels).
        # Rows already with a copy are skipped, so a run stopped halfway goes on cheaply.
        "UPDATE {partition} SET labels_key = labels "
        "WHERE ctid >= %s::tid AND ctid < %s::tid AND labels_key IS NULL "
        f"AND octet_length(labels::text) <= {LABELS_KEY_MAX}",
    ),
    Migration(
        4,
        "the label index scoped by namespace, queue and phase (btree_gin), if it can be made",
        # btree_gin gives GIN operator classes to plain columns, so one GIN index holds the
        # namespace, queue and phase beside the labels' keys and values, and a bitmap ANDs
        # them inside the index (its columns are independent: namespace + label and
        # namespace + queue + phase + label are both served). Trusted since PostgreSQL 13:
        # a user with CREATE on the database may create it. Where it cannot be created (no
        # privilege, not installed), the migration warns and keeps the unscoped index: the
        # reader's statements are the same, only slower (docs/history.md, "The schema").
        # Made on the partitioned table, the index is on every partition and on each new
        # day's (PARTITION OF takes the parent's indexes); dropping the parent's drops them.
        f"""
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS btree_gin;
EXCEPTION WHEN insufficient_privilege OR undefined_file OR undefined_object THEN
    RAISE WARNING '{SCOPED_INDEX_MISSING.replace("'", "''")} (%)', SQLERRM;
END $$;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'btree_gin') THEN
        CREATE INDEX IF NOT EXISTS {TABLE}_ns_labels_key
            ON {TABLE} USING gin (namespace, queue, phase, labels_key);
        DROP INDEX IF EXISTS {TABLE}_labels_key;
    END IF;
END $$;
""",
    ),
)


def block_ranges(pages: int, step: int = BACKFILL_PAGES) -> list[tuple[str, str]]:
    """A table of ``pages`` pages as ``ctid`` ranges ``[from, to)`` of ``step`` pages (a
    TID range scan each: the batch reads its own pages only)."""
    return [(f"({lo},0)", f"({min(lo + step, pages)},0)") for lo in range(0, pages, step)]


def day_of(at: datetime) -> date:
    return at.astimezone(UTC).date()


def partition_name(day: date) -> str:
    return f"{_PREFIX}{day:%Y%m%d}"


def partition_day(name: str) -> date | None:
    """The day a partition's name stands for, or None for another table."""
    if not name.startswith(_PREFIX):
        return None
    try:
        return datetime.strptime(name[len(_PREFIX) :], "%Y%m%d").date()
    except ValueError:
        return None


def partition_ddl(day: date) -> str:
    """Create the partition of one UTC day, if it is not there."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF {TABLE} "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )


def days_ahead(today: date, ahead: int) -> list[date]:
    """Today and the ``ahead`` days after it: the partitions made before rows need them."""
    return [today + timedelta(days=n) for n in range(ahead + 1)]


def expired(partitions: list[str], today: date, retention_days: int) -> list[str]:
    """The partitions wholly older than ``retention_days`` before ``today``: their day ended
    before the retention window starts."""
    oldest_kept = today - timedelta(days=retention_days)
    return sorted(
        name
        for name in partitions
        if (day := partition_day(name)) is not None and day < oldest_kept
    )
