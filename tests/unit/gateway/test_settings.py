"""Gateway settings from ASYNCTASK_GATEWAY_* (the names the chart sets) and the log format."""

from __future__ import annotations

import json
import logging

import pytest

from asynctask_gateway.cli import formatter
from asynctask_gateway.settings import MAX_WAIT_SECONDS, GatewaySettings


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "ADDRESS", "NAMESPACES", "AUDIENCES", "ALLOW_ANONYMOUS"):
        monkeypatch.delenv(f"ASYNCTASK_GATEWAY_{name}", raising=False)
    settings = GatewaySettings()
    assert (settings.port, settings.address) == (8080, "0.0.0.0")
    assert settings.namespaces == [] and settings.audiences == []
    assert settings.allow_anonymous is False and settings.auth_cache_seconds == 10
    assert settings.max_streams_per_user == settings.max_waits_per_user == 100
    assert settings.keepalive_seconds == 15 and settings.log_format == "text"


def test_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCTASK_GATEWAY_NAMESPACES", "team-a, team-b,")
    monkeypatch.setenv("ASYNCTASK_GATEWAY_AUDIENCES", "asynctask-gateway")
    monkeypatch.setenv("ASYNCTASK_GATEWAY_ALLOW_ANONYMOUS", "true")
    settings = GatewaySettings()
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.audiences == ["asynctask-gateway"]
    assert settings.allow_anonymous is True


def test_the_default_wait_stays_below_proxy_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCTASK_GATEWAY_DEFAULT_WAIT_SECONDS", str(MAX_WAIT_SECONDS + 1))
    with pytest.raises(ValueError, match="default_wait_seconds"):
        GatewaySettings()


def test_json_logs_are_one_object_per_line() -> None:
    record = logging.LogRecord(
        "asynctask_gateway", logging.INFO, __file__, 1, "serving on %s", ("x",), None
    )
    doc = json.loads(formatter("json").format(record))
    assert doc["message"] == "serving on x" and doc["level"] == "INFO"


def test_the_command_says_which_extra_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from asynctask_gateway import _script
    from asynctask_worker._entrypoint import missing_modules

    assert missing_modules(_script.GATEWAY_MODULES) == []  # the dev install has the extra
    monkeypatch.setattr(_script, "GATEWAY_MODULES", ("aiohttp", "no_such_module_here"))
    assert _script.main(["--help"]) == 2
    assert "asynctask-k8s[gateway]" in capsys.readouterr().err
