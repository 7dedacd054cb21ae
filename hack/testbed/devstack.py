"""The local dev stack: control plane, RabbitMQ, operator and example worker, all local.

``python -m testbed.devstack`` starts everything, submits ``examples/hello.yaml``, shows
``kubectl get asynctasks -w`` until the task Succeeded, then keeps running until Ctrl-C
(``--once``: stop right after the example task finished).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from testbed import probes
from testbed._proc import free_port, log, spawn, stop, wait_until
from testbed.controlplane import REPO, ControlPlane
from testbed.rabbitmq import RabbitMQ

CRD = REPO / "deploy" / "crds" / "asynctask.dev_asynctasks.yaml"
ADMISSION = REPO / "deploy" / "admission"
EXAMPLE = REPO / "examples" / "hello.yaml"
STATE = REPO / ".devstack"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    parser.add_argument("--once", action="store_true",
                        help="stop once the example task has finished")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    STATE.mkdir(exist_ok=True)
    started = time.monotonic()
    with ControlPlane() as cp, RabbitMQ(management=True) as rmq:
        env = cp.env()
        assert cp.bin_dir is not None
        env.update(ASYNCTASK_AMQP_URL=rmq.url, ASYNCTASK_WORKER_AMQP_URL=rmq.url,
                   ASYNCTASK_MANAGEMENT_URL=rmq.management_url,
                   PYTHONPATH=os.pathsep.join([str(REPO / "examples"),
                                               env.get("PYTHONPATH", "")]))
        (STATE / "env").write_text(
            f"export KUBECONFIG={cp.kubeconfig}\nexport PATH={cp.bin_dir}:$PATH\n"
            f"export ASYNCTASK_WORKER_AMQP_URL='{rmq.url}'\n")
        log("devstack", "installing the AsyncTask CRD and its admission policy")
        cp.install_crd(CRD)
        cp.kubectl("apply", "-f", str(ADMISSION))
        python = sys.executable
        operator_log, worker_log = STATE / "operator.log", STATE / "worker.log"
        for logfile in (operator_log, worker_log):
            logfile.write_bytes(b"")  # each run's logs on their own
        log("devstack", f"starting the operator (log: {operator_log.relative_to(REPO)})")
        live, metrics = free_port(), free_port()
        operator = spawn([python, "-m", "asynctask_operator", "--standalone",
                          "--liveness", probes.liveness_url(live)], operator_log, env)
        log("devstack", f"starting the example worker (log: {worker_log.relative_to(REPO)})")
        worker = spawn([python, "-m", "asynctask_worker", "example_tasks:app",
                        "--concurrency", "2", "--metrics-port", str(metrics)], worker_log, env)
        try:
            procs = [("operator", operator, operator_log), ("worker", worker, worker_log)]
            # Ready as their probe and metric say (testbed.probes), not as their logs word it.
            wait_until("the operator to connect to RabbitMQ (its broker probe)",
                       lambda: probes.operator_connected(probes.liveness_url(live)), 60, procs)
            wait_until("the worker to consume its queues (asynctask_worker_ready)",
                       lambda: probes.worker_ready(probes.metrics_url(metrics)), 60, procs)
            log("devstack", f"operator probes: {probes.liveness_url(live)}; worker metrics: "
                            f"{probes.metrics_url(metrics)}")
            log("devstack", f"stack up in {time.monotonic() - started:.0f}s; submitting "
                            f"{EXAMPLE.relative_to(REPO)}")
            watch = subprocess.Popen([str(cp.bin_dir / "kubectl"), "get", "asynctasks", "-w"],
                                     env=env)
            time.sleep(0.5)
            print(cp.kubectl("apply", "-f", str(EXAMPLE)).stdout, end="", flush=True)
            cp.kubectl("wait", "--for=condition=Completed", "asynctask/hello",
                       "--timeout=120s", timeout=130)
            time.sleep(0.5)
            watch.terminate()
            watch.wait()
            result = cp.kubectl("get", "asynctask", "hello", "-o",
                                "jsonpath={.status.phase} {.status.result}").stdout
            print(f"\nhello: {result}\n", flush=True)
            if args.once:
                return 0 if result.startswith("Succeeded") else 1
            print(f"The stack is running. In another shell:\n"
                  f"  source {(STATE / 'env').relative_to(REPO)}\n"
                  f"  kubectl apply -f examples/failing.yaml\n"
                  f"  kubectl get asynctasks -w\n"
                  f"Press Ctrl-C to stop everything.", flush=True)
            while operator.poll() is None and worker.poll() is None:
                time.sleep(1)
            log("devstack", "the operator or the worker exited; stopping")
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            stop(worker)
            stop(operator)


if __name__ == "__main__":
    sys.exit(main())
