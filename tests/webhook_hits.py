"""What the tests' webhook receivers record of each request they get."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Hit:
    """One request to a test receiver: its path, headers and body, and when it came."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def event(self) -> dict[str, Any]:
        """The body, parsed: a CloudEvent in structured JSON mode."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed
