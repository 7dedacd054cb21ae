"""``asynctask-operator``: run the operator (a thin wrapper around ``kopf run``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import kopf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="asynctask-operator",
        description="Run the AsyncTask operator. Settings come from ASYNCTASK_* variables.")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[],
                       help="watch this namespace (repeatable); default: all namespaces")
    parser.add_argument("--standalone", action="store_true",
                        help="no peering: for local runs with a single operator")
    parser.add_argument("--peering", default=None,
                        help="peering object name (replicas: one active, the others standby)")
    parser.add_argument("--liveness", default=None,
                        help="serve health probes, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    if not args.verbose:
        # kopf logs every handled watch event at INFO; the operator logs what matters.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)

    from asynctask_operator import handlers  # noqa: F401 - registers the handlers
    from asynctask_operator.app import OperatorMemo

    asyncio.run(kopf.operator(
        memo=OperatorMemo(namespaces=list(args.namespace)),
        standalone=args.standalone,
        peering_name=args.peering,
        namespaces=args.namespace,
        clusterwide=not args.namespace,
        liveness_endpoint=args.liveness,
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
