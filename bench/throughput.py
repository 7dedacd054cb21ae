"""Benchmark: tasks end to end through the real stack, and the API writes each one costs.

    PYTHONPATH=hack .venv/bin/python bench/throughput.py [--tasks 200] [--concurrency 8]

Starts the local control plane, RabbitMQ, the operator and one example worker, creates
--tasks AsyncTasks at once (each reports progress once and succeeds), waits until all are
Succeeded, and reports tasks/s and the writes per task taken from the apiserver's audit log.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

from testbed._proc import spawn, stop, wait_until
from testbed.controlplane import REPO, ControlPlane
from testbed.rabbitmq import RabbitMQ


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with ControlPlane() as cp, RabbitMQ() as rmq:
        env = dict(cp.env(), ASYNCTASK_AMQP_URL=rmq.url, ASYNCTASK_WORKER_AMQP_URL=rmq.url,
                   PYTHONPATH=str(REPO / "examples"))
        cp.kubectl("apply", "-f", str(REPO / "deploy/crds/asynctask.dev_asynctasks.yaml"))
        cp.kubectl("wait", "--for=condition=Established", "crd/asynctasks.asynctask.dev")
        cp.kubectl("create", "namespace", "bench")
        assert cp.workdir is not None
        logs = cp.workdir
        operator = spawn([sys.executable, "-m", "asynctask_operator", "--standalone"],
                         logs / "operator.log", env)
        worker = spawn([sys.executable, "-m", "asynctask_worker", "example_tasks:app",
                        "--concurrency", str(args.concurrency)], logs / "worker.log", env)
        try:
            procs = [("operator", operator, logs / "operator.log"),
                     ("worker", worker, logs / "worker.log")]
            wait_until("operator", lambda: "connected to RabbitMQ" in
                       (logs / "operator.log").read_text(), 60, procs)
            wait_until("worker", lambda: "serving" in (logs / "worker.log").read_text(), 60,
                       procs)
            items = [{"apiVersion": "asynctask.dev/v1alpha1", "kind": "AsyncTask",
                      "metadata": {"name": f"bench-{i:05d}", "namespace": "bench"},
                      "spec": {"queue": "hello",
                               "request": {"steps": 1, "step_seconds": 0}}}
                     for i in range(args.tasks)]
            print(f"creating {args.tasks} tasks (worker concurrency {args.concurrency})",
                  flush=True)
            start = time.monotonic()
            cp.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1",
                                                              "kind": "List",
                                                              "items": items}), timeout=300)
            created = time.monotonic() - start
            done = 0
            while done < args.tasks:
                out = cp.kubectl("get", "asynctasks", "-n", "bench", "-o",
                                 "jsonpath={.items[*].status.phase}").stdout.split()
                done = out.count("Succeeded")
                print(f"  {done}/{args.tasks} Succeeded after {time.monotonic() - start:.1f}s",
                      flush=True)
                if done < args.tasks:
                    time.sleep(1)
            took = time.monotonic() - start
            time.sleep(2)
            writes = [w for w in cp.writes("bench") if w["resource"] in ("asynctasks", "events")]
            kinds = collections.Counter((w["verb"], w["resource"], w["subresource"])
                                        for w in writes)
            operator_writes = sum(n for (verb, res, _), n in kinds.items()
                                  if not (verb == "create" and res == "asynctasks"))
            print(f"\n{args.tasks} tasks created in {created:.1f}s, all Succeeded after "
                  f"{took:.1f}s: {args.tasks / took:.1f} tasks/s end to end")
            print(f"API writes besides the user's creates: {operator_writes} = "
                  f"{operator_writes / args.tasks:.2f} per task")
            for key, n in sorted(kinds.items(), key=str):
                print(f"  {n:6d} {' '.join(k for k in key if k)}")
        finally:
            stop(worker)
            stop(operator)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
