"""kopf set up for 100k tasks: paged listing, short-lived workers, no diff base."""

from __future__ import annotations

import kopf

from asynctask_operator import handlers, kopf_settings


def test_the_listing_is_paged_and_idle_workers_go_soon() -> None:
    settings = kopf.OperatorSettings()
    kopf_settings.configure(settings)
    assert settings.watching.chunk_size == kopf_settings.LIST_CHUNK
    assert settings.queueing.idle_timeout == kopf_settings.WORKER_IDLE_SECONDS
    assert isinstance(settings.persistence.diffbase_storage, kopf_settings.NoDiffBase)


def test_no_diff_base_is_built_or_stored() -> None:
    storage = kopf_settings.NoDiffBase()
    body = kopf.Body({"metadata": {"name": "t"}, "spec": {"queue": "q"}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None


def test_the_operator_registers_no_change_handlers_which_would_need_a_diff_base() -> None:
    """With ``on.create``/``on.update``/``on.field``… the empty diff base would hide every
    change from them: whoever adds one must give kopf its diff base back."""
    assert handlers.task_event  # registered on import
    registry = kopf.get_default_registry()
    assert registry._changing.get_all_handlers() == []
    assert [h.id for h in registry._watching.get_all_handlers()] == ["task_event"]
