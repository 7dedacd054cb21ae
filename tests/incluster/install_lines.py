"""The README's "Install on your cluster" lines, as the in-cluster tests run them.

The lines are the fenced ``sh`` block that follows the marker comment in README.md; they are
run as written (``bash -euo pipefail``) in a folder that holds ``make dist``'s files, with
``AMQP_URL`` set, so a broken line fails the in-cluster suite.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MARKER = "<!-- install-on-your-cluster:"


def install_lines(readme: str | None = None) -> str:
    """The shell block after the marker, without its fences."""
    text = README.read_text() if readme is None else readme
    _, found, after = text.partition(MARKER)
    assert found, f"README.md has no {MARKER} block"
    block = re.match(r"[^\n]*\n```sh\n(.*?)\n```\n", after, re.DOTALL)
    assert block, "the install marker must be followed by a ```sh block"
    return block.group(1) + "\n"


def install_version(lines: str) -> str:
    """The release the lines install (their ``VERSION=`` line)."""
    found = re.search(r"^VERSION=(\S+)$", lines, re.MULTILINE)
    assert found, "the install lines set no VERSION"
    return found.group(1)
