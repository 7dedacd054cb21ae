"""kopf runs the process and watches nothing: AsyncTasks are the operator's own watch."""

from __future__ import annotations

import logging

import kopf

from asynctask_operator import handlers, kopf_settings


def test_kopf_posts_only_warnings_and_scans_for_no_resources() -> None:
    settings = kopf.OperatorSettings()
    kopf_settings.configure(settings)
    assert settings.posting.level == logging.WARNING
    assert settings.scanning.disabled


def test_the_operator_registers_no_resource_handlers_with_kopf() -> None:
    """A resource handler would make kopf list and watch that resource with its
    per-object machinery, beside the operator's own watch (task_watch)."""
    assert handlers.startup  # registered on import
    registry = kopf.get_default_registry()
    assert registry._changing.get_all_handlers() == []
    assert registry._watching.get_all_handlers() == []
    assert registry._spawning.get_all_handlers() == []
    assert registry._indexing.get_all_handlers() == []
    assert registry._webhooks.get_all_handlers() == []
