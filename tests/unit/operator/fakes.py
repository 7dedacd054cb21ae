"""Fakes shared by the operator's unit tests: they record what the code under test asked."""

from __future__ import annotations

from typing import Any


def resolver(table: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]
    return resolve
