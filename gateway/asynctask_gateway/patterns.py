"""The regular expressions that decide what the gateway accepts, each written once: the
validators match with them and the OpenAPI document publishes them as ``pattern`` (pure).

They keep to the syntax Python's ``re``, ECMA-262 and Rust's regex (which Schemathesis
validates with) read alike: no look-arounds, no ``\\s`` or ``\\d`` (each reads them
differently), classes spelled out in ASCII.
"""

from __future__ import annotations

import re

#: A DNS-1123 label: a namespace (at most 63 characters).
DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#: A DNS-1123 subdomain: an object's name (at most 253 characters), dot-separated labels.
DNS_SUBDOMAIN = rf"{DNS_LABEL}(\.{DNS_LABEL})*"
NAMESPACE_PATTERN = rf"^{DNS_LABEL}$"
NAME_PATTERN = rf"^{DNS_SUBDOMAIN}$"
MAX_NAMESPACE = 63
MAX_NAME = 253

#: A label key: an optional DNS-subdomain prefix (at most 253) and ``/``, then a name of at
#: most 63 alphanumerics, ``-``, ``_`` and ``.``, starting and ending alphanumeric.
LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY = rf"^({DNS_SUBDOMAIN}/)?{LABEL_NAME}$"
MAX_LABEL_KEY = MAX_NAME + 1 + 63
#: A label value: empty, or like a label key's name.
LABEL_VALUE = rf"^({LABEL_NAME})?$"

#: An RFC 3339 time as ``spec.notBefore`` takes it: ``2026-12-05T12:00:00Z``, fractions of a
#: second and a numeric offset allowed (the validator then checks it is a real date).
RFC3339_TIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)

#: An IANA time zone's name as a schedule's ``timeZone`` takes it (``Europe/Berlin``,
#: ``UTC``, ``Etc/GMT+2``): whether the zone exists is the operator's to say (Ready=False).
TIME_ZONE = r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"
#: A schedule's cron expression: 5 fields of cron's characters, or a macro (the CRD's rule;
#: whether the fields make sense is the operator's to say: Ready=False, InvalidSchedule).
CRON = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|[-0-9A-Za-z*?,/#]+( +[-0-9A-Za-z*?,/#]+){4})$"
)

#: ``30s``, ``1.5s``, ``500ms``, ``1m`` or plain seconds; spaces and tabs around are allowed.
DURATION = r"^[ \t]*([0-9]+(\.[0-9]+)?)[ \t]*(ms|s|m)?[ \t]*$"

#: ``Idempotency-Key``: 1 to 255 printable ASCII characters, bare, or as a structured-field
#: string (``"..."``, whose quotes are not part of the key). Alternatives in order: a quoted
#: key; a lone ``"``; a key that starts with ``"`` but does not end with one; any other key
#: (the header's surrounding white space is not part of its value).
IDEMPOTENCY_KEY = r'^("[ -~]{1,255}"|"|"[ -~]{0,253}[!#-~]|[!#-~]([ -~]{0,253}[!-~])?)$'

#: The ``continue`` token: unpadded base64url (empty: the first page).
CONTINUE = r"^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-]{2,3})?$"

#: Kubernetes' label selector syntax (``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``,
#: ``a in (x,y)``, ``a notin (x,y)``; a comma is "and"; empty terms are ignored). White
#: space is ASCII's, spelled out: ``\s`` means other characters in Python, ECMA-262 and Rust.
WS = r"[ \t\n\r\f\v]"
SELECTOR_KEY = r"[^ \t\n\r\f\v!=(),]+"
SELECTOR_VALUE = r"[^ \t\n\r\f\v!=(),]*"
SELECTOR_SET = rf"^{WS}*(!?)({SELECTOR_KEY}){WS}+(in|notin){WS}+\(([^()]*)\){WS}*$"
SELECTOR_EQ = rf"^{WS}*({SELECTOR_KEY}){WS}*(==|=|!=){WS}*({SELECTOR_VALUE}){WS}*$"
SELECTOR_EXISTS = rf"^{WS}*(!?)({SELECTOR_KEY}){WS}*$"
_NONEMPTY_TERM = (
    rf"{WS}*{SELECTOR_KEY}{WS}+(in|notin){WS}+\([^()]*\){WS}*"
    rf"|{WS}*{SELECTOR_KEY}{WS}*(==|=|!=){WS}*{SELECTOR_VALUE}{WS}*"
    rf"|{WS}*!?{SELECTOR_KEY}{WS}*"
)
_TERM = rf"{_NONEMPTY_TERM}|{WS}*"
LABEL_SELECTOR = rf"^({_TERM})(,({_TERM}))*$"
#: A selector for a bulk action: the same syntax with at least one term that is not empty
#: (a selector of commas and white space only would select every task).
BULK_SELECTOR = rf"^(({_TERM}),)*({_NONEMPTY_TERM})(,({_TERM}))*$"
#: The characters of ``WS``, for ``str.strip``.
WS_CHARS = " \t\n\r\f\v"

#: A webhook URL the gateway accepts: http(s), a host name or IPv4 address, an optional
#: port (0 to 65535), then a path or query of visible ASCII characters without a fragment.
#: A subset of the CRD's pattern that Python's URL parser also reads without error.
PORT = r"([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
WEBHOOK_URL = rf'^https?://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:{PORT})?([/?][!"$-~]*)?$'

#: A Kubernetes uid in its textual form (RFC 4122, lowercase as the apiserver writes it): a
#: task is found by it as well as by its name (``GET …/tasks/{uid}``, docs/history.md).
UID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def matches(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches the whole of ``text`` (a final newline is not ``$``)."""
    return re.fullmatch(pattern, text) is not None
