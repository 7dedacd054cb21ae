"""What an apiserver (or object store) call can end in, in the task logic's words.

The adapters (:mod:`apiserver.kube`, :mod:`leader.leadership`, :mod:`payloads.store`) raise
these; the task logic and the unit tests' fakes know only them, never the HTTP client's
exceptions.
"""

from __future__ import annotations


class Gone(Exception):
    """The object is gone, or was replaced by another one with the same name."""


class Rejected(Exception):
    """The apiserver refused the write as invalid (e.g. a field over its size limit)."""


class Unavailable(Exception):
    """The apiserver could not be reached, or answered "not now" (429, 5xx): the same call
    is worth making again later, unchanged (an outage, a restart, overload). Its message
    says why.

    ``maybe_applied``: the request went out and no answer says it was refused (it timed
    out, the connection was lost, or a 500/502/504 came, which may follow the write), so
    a write may have been applied all the same; a caller that must not make a write twice
    reads the object before it repeats one (:class:`outage.PatientApi`). False when the
    request never reached the apiserver (cannot connect) or was turned away before it was
    handled (429, 503)."""

    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


class AlreadyExists(Exception):
    """A create met an object of the same name (a schedule's slot that already ran)."""


class StoreError(Exception):
    """The object store of large payloads refused a call or could not be reached (or the
    operator has no credentials for it). Its message says why."""
