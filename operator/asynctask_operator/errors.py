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
    says why."""


class AlreadyExists(Exception):
    """A create met an object of the same name (a schedule's slot that already ran)."""


class StoreError(Exception):
    """The object store of large payloads refused a call or could not be reached (or the
    operator has no credentials for it). Its message says why."""
