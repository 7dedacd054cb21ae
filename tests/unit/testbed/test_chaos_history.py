"""The chaos suite's checks of phase histories catch what they are there to catch."""

from __future__ import annotations

from tests.chaos.history import changed_after_terminal, summary


def test_a_terminal_phase_followed_by_another_is_caught() -> None:
    assert changed_after_terminal(["Pending", "Processing", "Succeeded", "Error"])
    assert changed_after_terminal(["Pending", "Succeeded", "Processing"])
    assert changed_after_terminal(["Succeeded", "Succeeded", "Failed"])


def test_a_terminal_phase_written_again_is_not_a_change() -> None:
    # the webhook outcome's write repeats the terminal phase
    assert not changed_after_terminal(["Pending", "Processing", "Succeeded", "Succeeded"])
    assert not changed_after_terminal([None, "Pending", "Processing"])
    assert not changed_after_terminal([])


def test_summary_counts_lost_and_double_terminal_tasks() -> None:
    histories: dict[str, list[str | None]] = {
        "a": [None, "Pending", "Processing", "Succeeded"],
        "b": [None, "Pending", "Processing"],  # stuck
        "c": [None, "Pending", "Error", "Succeeded"],  # changed after terminal
        "d": [None, "Pending", "Succeeded", None],  # deleted: not terminal any more
    }
    got = summary(histories, ["a", "b", "c", "d", "e"])  # e: never seen
    assert got.tasks == 5
    assert got.terminal == {"Succeeded": 2}
    assert got.lost == ["b", "d", "e"]
    assert got.double_terminal == ["c"]
