"""The AsyncTask custom resource's coordinates, in one place.

Kept in a module of their own, without dependencies, so that anything may import them: the
operator's API calls, its Kubernetes Events, the CloudEvents' ``source``, and the gateway.
"""

from __future__ import annotations

GROUP = "asynctask.dev"
VERSION = "v1alpha1"
PLURAL = "asynctasks"
KIND = "AsyncTask"
