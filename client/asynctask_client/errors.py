"""The client's exceptions: one per terminal phase that is not success, and the API's refusals.

A task that ended badly is not a bug in the caller's program, so each terminal phase gets its
own type (``except TaskCancelled`` reads better than comparing strings); all of them derive
from :class:`TaskNotSucceeded`, which carries the final view. Refusals of the Kubernetes API
or of the gateway become :class:`ApiError` with the status, the machine-readable reason and
the field causes, whichever transport was used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asynctask_worker.messages import Phase
from asynctask_worker.views import TaskView


class ClientError(Exception):
    """Every error this package raises."""


class ConnectionFailed(ClientError):
    """The gateway or the apiserver could not be reached (network, TLS, configuration)."""


class ConfigError(ClientError):
    """The kubeconfig (or the in-cluster configuration) cannot be used."""


class ApiError(ClientError):
    """A refusal of the API: ``status`` (HTTP), ``reason`` (``NotFound``, ``Forbidden``,
    ``Invalid``...), ``message`` and ``causes`` (``[{field, reason, message}]``)."""

    def __init__(
        self, status: int, reason: str, message: str, causes: list[dict[str, Any]] | None = None
    ) -> None:
        self.status, self.reason, self.message = status, reason, message
        self.causes = causes or []
        detail = "; ".join(f"{c.get('field', '')}: {c.get('message', '')}" for c in self.causes)
        super().__init__(f"{status} {reason}: {message}" + (f" ({detail})" if detail else ""))

    @classmethod
    def from_kubernetes(cls, status: int, body: Mapping[str, Any]) -> ApiError:
        """From a Kubernetes ``Status`` object."""
        details = body.get("details") or {}
        return cls(
            status,
            str(body.get("reason") or _reason(status)),
            str(body.get("message") or "the apiserver refused the call"),
            list(details.get("causes") or []),
        )

    @classmethod
    def from_problem(cls, status: int, body: Mapping[str, Any]) -> ApiError:
        """From an RFC 9457 problem of the gateway."""
        return cls(
            status,
            str(body.get("reason") or _reason(status)),
            str(body.get("detail") or body.get("title") or "the gateway refused the call"),
            list(body.get("causes") or []),
        )


def _reason(status: int) -> str:
    return {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        410: "Gone",
        413: "RequestEntityTooLarge",
        422: "Invalid",
        429: "TooManyRequests",
    }.get(status, "InternalError" if status >= 500 else "Error")


class PayloadChecksumMismatch(ClientError):
    """A stored payload's bytes are not those its ref names (size or sha256): an upload the
    gateway stored otherwise than sent, or a download that does not match (a download to a
    path leaves no file then)."""


class PayloadsNeedGateway(ClientError):
    """Large payloads (uploads, stored results) are handled by the gateway: the Kubernetes
    API transport holds no storage credentials."""


class TaskDeleted(ClientError):
    """The task was deleted while it was being followed."""

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        super().__init__(f'the task "{name}" in "{namespace}" was deleted')


class WaitTimeout(ClientError, TimeoutError):
    """The wait ended before the task did (the task goes on); ``view`` is the latest state.
    Not to be confused with :class:`TaskTimedOut`, a task that ran out of its own time."""

    def __init__(self, view: TaskView, seconds: float) -> None:
        self.view = view
        super().__init__(
            f'the task "{view.name}" is still {view.phase.value} after waiting {seconds:g} s'
        )


class TaskNotSucceeded(ClientError):
    """The task ended in a terminal phase other than Succeeded; ``view`` is its final state,
    ``reason`` and ``message`` come from ``status.error``."""

    phase: Phase = Phase.ERROR

    def __init__(self, view: TaskView) -> None:
        self.view = view
        error = view.error
        self.reason = (error.reason if error else None) or view.phase.value
        self.message = (error.message if error else None) or view.message or ""
        super().__init__(f'task "{view.name}" {view.phase.value}: {self.reason}: {self.message}')


class TaskFailed(TaskNotSucceeded):
    """The handler raised the worker SDK's ``TaskFailed``, or the request did not validate
    (an expected failure, never retried)."""

    phase = Phase.FAILED


class TaskError(TaskNotSucceeded):
    """An unexpected exception (``traceback`` holds the handler's excerpt), a lost worker or
    a dead-lettered message, after the retries the spec allowed."""

    phase = Phase.ERROR

    def __init__(self, view: TaskView) -> None:
        super().__init__(view)
        self.traceback = view.error.traceback if view.error else None


class TaskCancelled(TaskNotSucceeded):
    """Cancelled (``spec.cancel``) before or while it ran."""

    phase = Phase.CANCELLED


class TaskTimedOut(TaskNotSucceeded):
    """The task ran past ``timeoutSeconds`` or waited past ``queueTimeoutSeconds``."""

    phase = Phase.TIMED_OUT


OUTCOMES: dict[Phase, type[TaskNotSucceeded]] = {
    cls.phase: cls for cls in (TaskFailed, TaskError, TaskCancelled, TaskTimedOut)
}


def raise_for_outcome(view: TaskView) -> None:
    """Raise the exception of the view's terminal phase; nothing for Succeeded."""
    if view.done and view.phase is not Phase.SUCCEEDED:
        raise OUTCOMES[view.phase](view)
