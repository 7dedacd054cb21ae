"""Size limits of the free text the operator writes, named once.

The apiserver keeps objects below about 1.5 MiB, and people read these strings in
``kubectl describe``: a human-sized message, a longer error detail, and never the whole
response body of a refused request.
"""

from __future__ import annotations

#: ``status.message``, condition messages, Kubernetes Event messages, a webhook's lastError.
MESSAGE_CHARS = 1024
#: ``status.error.message``: room for a stack trace's tail.
ERROR_CHARS = 4096
#: The part of the apiserver's refusal quoted in a StatusRejected error.
REJECTION_CHARS = 800
#: The part of the apiserver's response body kept in a ``Rejected`` exception.
API_ERROR_CHARS = 2000
#: Signing keys kept in the webhook secret cache before expired ones are dropped.
SECRET_CACHE_ENTRIES = 1024
