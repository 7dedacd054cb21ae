"""The SDK surface: registering handlers, request validation, how outcomes are classified."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel

from asynctask_worker import App, Phase, TaskContext, TaskFailed
from asynctask_worker._runtime.outcome import MAX_RESULT_BYTES, TRACEBACK_CHARS
from asynctask_worker.testing import run_task


class Order(BaseModel):
    item: str
    quantity: int = 1


@dataclasses.dataclass
class Receipt:
    item: str
    total: int


app = App("unit")
calls: list[Any] = []


@app.task("order")
def order(request: Order, ctx: TaskContext) -> Receipt:
    calls.append(request)
    ctx.progress(-5, "clamped up")
    ctx.progress(42.9, "truncated")
    ctx.progress(250, "clamped down")
    return Receipt(request.item, request.quantity * 3)


@app.task("raw")
def raw(request):  # type: ignore[no-untyped-def]  # unannotated on purpose
    return {"got": request}


@app.task("refuse")
def refuse(request: dict[str, Any]) -> None:
    raise TaskFailed("out of stock", reason="OutOfStock")


@app.task("crash")
def crash(request: dict[str, Any]) -> None:
    nested_helper_that_breaks()


def nested_helper_that_breaks() -> None:
    raise KeyError("missing")


@app.task("not-json")
def not_json(request: None) -> object:
    return object()


@app.task("huge")
def huge(request: None) -> str:
    return "x" * (MAX_RESULT_BYTES + 1)


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


deep_app = App("unit-deep-results")


@deep_app.task("deep")
def deep(request: None) -> object:
    return _nested(150)  # the operator's JSON parser would refuse the status message


@deep_app.task("deeper-than-python")
def deeper_than_python(request: None) -> object:
    return _nested(5000)


@app.task("async-sum")
async def async_sum(request: list[int], ctx: TaskContext) -> int:
    await asyncio.sleep(0)
    ctx.progress(100, "summed")
    return sum(request)


def test_registration_keeps_the_function_and_inspects_it() -> None:
    assert app.queues == ["async-sum", "crash", "huge", "not-json", "order", "raw", "refuse"]
    assert order(Order(item="a"), _ctx()) == Receipt("a", 3)  # still directly callable
    definition = app.definition("order")
    assert definition.wants_context and not definition.is_async
    assert app.definition("async-sum").is_async
    assert app.definition("raw").request_adapter is None
    assert not app.definition("refuse").wants_context


def test_registration_refuses_bad_handlers() -> None:
    bad = App()
    bad.task("q")(lambda request: None)
    with pytest.raises(ValueError, match="already has a handler"):
        bad.task("q")(lambda request: None)
    with pytest.raises(TypeError, match=r"\(request\) or \(request, ctx\)"):
        bad.task("none")(lambda: None)
    with pytest.raises(TypeError, match=r"\(request\) or \(request, ctx\)"):
        bad.task("three")(lambda a, b, c: None)

    def kw_only(request: Any, *, needed: int) -> None: ...

    with pytest.raises(TypeError):
        bad.task("kw")(kw_only)
    with pytest.raises(KeyError, match="no handler for queue 'nope'"):
        bad.definition("nope")


def test_the_direct_form_registers_too() -> None:
    other = App()

    def handler(request: Any) -> int:
        return 1

    assert other.task("direct", handler) is handler
    assert other.queues == ["direct"]


def test_success_validates_the_request_and_serialises_the_result() -> None:
    calls.clear()
    result = run_task(app, "order", {"item": "tea", "quantity": 2})
    assert result.phase is Phase.SUCCEEDED and result.error is None
    assert result.result == {"item": "tea", "total": 6}
    assert calls == [Order(item="tea", quantity=2)]
    assert result.progress == [(0, "clamped up"), (42, "truncated"), (100, "clamped down")]
    phases = [s.phase for s in result.statuses]
    assert phases[0] is Phase.PROCESSING and phases[-1] is Phase.SUCCEEDED
    assert [s.seq for s in result.statuses] == list(range(len(result.statuses)))
    assert result.statuses[-1].progress == 100 and result.ran


def test_an_invalid_request_fails_without_calling_the_handler() -> None:
    calls.clear()
    result = run_task(app, "order", {"quantity": "many"})
    assert result.phase is Phase.FAILED and result.error is not None
    assert result.error.reason == "InvalidRequest" and "item" in result.error.message
    assert calls == []


def test_an_unannotated_handler_gets_the_raw_json() -> None:
    assert run_task(app, "raw", [1, "two", None]).result == {"got": [1, "two", None]}


def test_a_business_failure_is_failed_with_its_reason_and_no_traceback() -> None:
    result = run_task(app, "refuse", {})
    assert result.phase is Phase.FAILED and result.error is not None
    assert (result.error.reason, result.error.message) == ("OutOfStock", "out of stock")
    assert result.error.traceback is None and result.message == "out of stock"


def test_an_unexpected_exception_is_an_error_with_a_traceback_excerpt() -> None:
    result = run_task(app, "crash", {})
    assert result.phase is Phase.ERROR and result.error is not None
    assert result.error.reason == "HandlerException"
    assert result.error.message == "KeyError: 'missing'"
    tb = result.error.traceback
    assert tb is not None and "nested_helper_that_breaks" in tb and len(tb) <= TRACEBACK_CHARS


@pytest.mark.parametrize(
    ("queue", "reason"),
    [
        ("not-json", "ResultNotSerializable"),
        ("huge", "ResultTooLarge"),
        ("deep", "ResultTooDeep"),
        ("deeper-than-python", "ResultTooDeep"),
    ],
)
def test_results_that_cannot_be_reported_are_errors(queue: str, reason: str) -> None:
    result = run_task(deep_app if queue in deep_app.tasks else app, queue, None)
    assert result.phase is Phase.ERROR and result.error is not None
    assert result.error.reason == reason


def test_an_async_handler_runs_to_completion() -> None:
    result = run_task(app, "async-sum", [1, 2, 3])
    assert result.phase is Phase.SUCCEEDED and result.result == 6
    assert result.progress == [(100, "summed")]


def _ctx() -> TaskContext:
    from asynctask_worker.messages import TaskRef

    return TaskContext(
        TaskRef(uid="u", namespace="n", name="x"), 1, "order", lambda percent, message: None
    )
