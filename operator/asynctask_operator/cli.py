"""``asynctask-operator``: run the operator (a thin wrapper around ``kopf run``)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import re
import sys

import kopf

from asynctask_operator.logs import LOG_FORMATS, configure_logging
from asynctask_worker._entrypoint import version_line
from asynctask_worker._version import __version__

#: The apiserver accepts JSON nested up to 10,000 levels (Kubernetes' JSON decoder and Go's
#: both stop there); Python's json stops at the interpreter's recursion limit (1,000). A
#: watch event the operator cannot decode (or that kopf cannot deepcopy: two Python frames
#: a level) would be retried forever, so the limit is raised well above what the apiserver
#: accepts: such a task is then seen, and ended in Error (RequestTooDeep) like any request
#: nested deeper than the wire allows. Python 3.11 calls Python from Python without C
#: recursion, so these frames do not grow the C stack.
APISERVER_MAX_JSON_DEPTH = 10_000
RECURSION_LIMIT = 3 * APISERVER_MAX_JSON_DEPTH + 2_000

#: The cyclic garbage collector's youngest generation runs after this many allocations
#: (Python's default: 700). Listing 100k tasks at start-up allocates millions of objects,
#: nearly none of them garbage in cycles: with this, a start-up with 30k tasks took 19.8 s
#: instead of 23.4 s (bench/README.md). A young collection of 50k objects takes
#: milliseconds.
GC_YOUNG_THRESHOLD = 50_000


_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#: A Lease's name: a DNS subdomain (what the apiserver accepts for most objects' names).
LEASE_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")
LEASE_RULE = "lowercase letters, digits, '-' and '.', at most 253 characters"


def tune_gc() -> None:
    """Collect cycles less often, and never look again at what start-up imported."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asynctask-operator",
        description="Run the AsyncTask operator. Settings come from ASYNCTASK_* variables.",
    )
    parser.add_argument("--version", action="version", version=version_line(parser.prog))
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch this namespace (repeatable; a pattern such as 'team-*' or "
        "'*,!kube-*' watches all namespaces and keeps the matching ones); default: all "
        "namespaces",
    )
    election = parser.add_mutually_exclusive_group()
    election.add_argument(
        "--standalone",
        action="store_true",
        help="no leader election: this operator works at once (the default without "
        "--peering); run one only",
    )
    election.add_argument(
        "--peering",
        default=None,
        metavar="NAME",
        help="elect a leader on the Lease NAME in the pod's namespace (POD_NAMESPACE): "
        "replicas given the same NAME stand by while one works",
    )
    parser.add_argument(
        "--liveness", default=None, help="serve health probes, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get("ASYNCTASK_LOG_FORMAT", "text"),
        help="text or json lines (default: $ASYNCTASK_LOG_FORMAT, else text)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    options = parser()
    args = options.parse_args(argv)
    if args.peering is not None and not LEASE_NAME.fullmatch(args.peering):
        options.error(f"--peering {args.peering!r}: not a Kubernetes object name ({LEASE_RULE})")
    configure_logging(args.log_format, args.verbose)
    logging.getLogger("asynctask.operator").info("asynctask-operator %s starting", __version__)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    from asynctask_operator import handlers  # noqa: F401 - registers the handlers
    from asynctask_operator.app import OperatorMemo

    tune_gc()
    asyncio.run(
        kopf.operator(
            memo=OperatorMemo(namespaces=list(args.namespace), peering=args.peering),
            # kopf's peering would pause only kopf's own watches, never the operator's
            # work: the Lease (leader/leadership.py) elects the replica that works instead.
            standalone=True,
            # kopf watches nothing (the operator watches its namespaces itself): no
            # namespace of kopf's own, so it needs no right to list namespaces.
            clusterwide=True,
            liveness_endpoint=args.liveness,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
