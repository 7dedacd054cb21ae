"""The worker guide's example is the file in examples/, and it works as written."""

from __future__ import annotations

from pathlib import Path

import pytest

import thumbnails_tests

REPO = Path(__file__).resolve().parents[3]
GUIDE = REPO / "docs" / "writing-a-worker.md"


@pytest.mark.parametrize("example", ["thumbnails.py", "thumbnails_tests.py"])
def test_the_guide_shows_the_example_files_verbatim(example: str) -> None:
    code = (REPO / "examples" / example).read_text()
    guide = GUIDE.read_text()
    assert "## Writing a worker" in guide
    assert f"```python\n{code}```" in guide, (
        f"docs/writing-a-worker.md is out of date: paste examples/{example} into it again"
    )


EXAMPLE_TESTS = [name for name in dir(thumbnails_tests) if name.startswith("test_")]


def test_the_example_has_tests() -> None:
    assert len(EXAMPLE_TESTS) >= 3, EXAMPLE_TESTS  # an empty list would skip the test below


@pytest.mark.parametrize("test", EXAMPLE_TESTS)
def test_the_example_and_its_tests_run_as_written(test: str, tmp_path: Path) -> None:
    getattr(thumbnails_tests, test)(tmp_path)
