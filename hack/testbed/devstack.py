"""The local dev stack: control plane, RabbitMQ, operator, example worker and HTTP gateway,
all local.

``python -m testbed.devstack`` starts everything, submits ``examples/hello.yaml``, shows
``kubectl get asynctasks -w`` until the task Succeeded, prints the README's ``curl`` line with
a token for the gateway, then keeps running until Ctrl-C (``--once``: stop right after the
example task finished and the README's ``curl`` submitted one through the gateway).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

from testbed import probes
from testbed._proc import free_port, log, spawn, stop, wait_until
from testbed.controlplane import REPO, ControlPlane
from testbed.rabbitmq import RabbitMQ

CRD = REPO / "deploy" / "crds" / "asynctask.dev_asynctasks.yaml"
ADMISSION = REPO / "deploy" / "admission"
EXAMPLE = REPO / "examples" / "hello.yaml"
STATE = REPO / ".devstack"
README = REPO / "README.md"
#: The dev gateway's caller: a ServiceAccount with every right on asynctasks in "default".
CLIENT_SA = "dev-client"


def readme_curl() -> str:
    """The README's HTTP API example (the block after ``<!-- gateway-curl -->``)."""
    match = re.search(r"<!-- gateway-curl -->\s*```sh\n(.*?)```", README.read_text(), re.S)
    if not match:
        raise RuntimeError("README.md has no gateway-curl block")
    return match.group(1).strip()


def gateway_port() -> int:
    """ASYNCTASK_GATEWAY_PORT, else 8080 when free, else any free port."""
    if os.environ.get("ASYNCTASK_GATEWAY_PORT"):
        return int(os.environ["ASYNCTASK_GATEWAY_PORT"])
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", 8080)) != 0:
            return 8080
    return free_port()


def client_token(cp: ControlPlane) -> str:
    """A token of a ServiceAccount allowed everything on asynctasks in "default"."""
    cp.kubectl("create", "serviceaccount", CLIENT_SA, "-n", "default")
    cp.kubectl(
        "create",
        "role",
        CLIENT_SA,
        "-n",
        "default",
        "--resource=asynctasks",
        "--verb=get,list,watch,create,patch,delete",
    )
    cp.kubectl(
        "create",
        "rolebinding",
        CLIENT_SA,
        "-n",
        "default",
        f"--role={CLIENT_SA}",
        f"--serviceaccount=default:{CLIENT_SA}",
    )
    return cp.kubectl(
        "create", "token", CLIENT_SA, "-n", "default", "--duration=24h"
    ).stdout.strip()


def curl_works(env: dict[str, str], http_env: dict[str, str]) -> bool:
    """Run the README's curl against the dev gateway: the task must succeed."""
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_curl()],
        env={**env, **http_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print(f"over HTTP: {proc.stdout.strip()}{proc.stderr}", flush=True)
    return proc.returncode == 0 and '"phase": "Succeeded"' in proc.stdout


def running_message(http_env: dict[str, str]) -> str:
    exports = " ".join(f"{k}={v}" for k, v in http_env.items())
    return (
        f"The stack is running. In another shell:\n"
        f"  source {(STATE / 'env').relative_to(REPO)}\n"
        f"  kubectl apply -f examples/failing.yaml\n"
        f"  kubectl get asynctasks -w\n"
        f"The HTTP API (docs/gateway.md), with a token for {CLIENT_SA}:\n"
        f"  export {exports}\n"
        f"{textwrap.indent(readme_curl(), '  ')}\n"
        f"The dashboard: open {http_env['GATEWAY']}/ui/#/ns/{http_env['NS']} and paste the\n"
        f"  TOKEN above into its token field (kept in that tab only, never in a URL).\n"
        f"Press Ctrl-C to stop everything."
    )


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    parser.add_argument(
        "--once", action="store_true", help="stop once the example task has finished"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    STATE.mkdir(exist_ok=True)
    started = time.monotonic()
    with ControlPlane() as cp, RabbitMQ(management=True) as rmq:
        env = cp.env()
        assert cp.bin_dir is not None
        env.update(
            ASYNCTASK_AMQP_URL=rmq.url,
            ASYNCTASK_WORKER_AMQP_URL=rmq.url,
            ASYNCTASK_MANAGEMENT_URL=rmq.management_url,
            PYTHONPATH=os.pathsep.join([str(REPO / "examples"), env.get("PYTHONPATH", "")]),
        )
        (STATE / "env").write_text(
            f"export KUBECONFIG={cp.kubeconfig}\nexport PATH={cp.bin_dir}:$PATH\n"
            f"export ASYNCTASK_WORKER_AMQP_URL='{rmq.url}'\n"
        )
        log("devstack", "installing the AsyncTask CRD and its admission policy")
        cp.install_crd(CRD)
        cp.kubectl("apply", "-f", str(ADMISSION))
        python = sys.executable
        operator_log, worker_log = STATE / "operator.log", STATE / "worker.log"
        gateway_log = STATE / "gateway.log"
        for logfile in (operator_log, worker_log, gateway_log):
            logfile.write_bytes(b"")  # each run's logs on their own
        log("devstack", f"starting the operator (log: {operator_log.relative_to(REPO)})")
        live, metrics = free_port(), free_port()
        operator = spawn(
            [
                python,
                "-m",
                "asynctask_operator",
                "--standalone",
                "--liveness",
                probes.liveness_url(live),
            ],
            operator_log,
            env,
        )
        log("devstack", f"starting the example worker (log: {worker_log.relative_to(REPO)})")
        worker = spawn(
            [
                python,
                "-m",
                "asynctask_worker",
                "example_tasks:app",
                "--concurrency",
                "2",
                "--metrics-port",
                str(metrics),
            ],
            worker_log,
            env,
        )
        port = gateway_port()
        gateway_url = f"http://127.0.0.1:{port}"
        log(
            "devstack",
            f"starting the HTTP gateway on {gateway_url} (log: {gateway_log.relative_to(REPO)})",
        )
        gateway = spawn(
            [python, "-m", "asynctask_gateway"],
            gateway_log,
            dict(env, ASYNCTASK_GATEWAY_PORT=str(port), ASYNCTASK_GATEWAY_ADDRESS="127.0.0.1"),
        )
        try:
            procs = [
                ("operator", operator, operator_log),
                ("worker", worker, worker_log),
                ("gateway", gateway, gateway_log),
            ]
            # Ready as their probe and metric say (testbed.probes), not as their logs word it.
            wait_until(
                "the operator to connect to RabbitMQ (its broker probe)",
                lambda: probes.operator_connected(probes.liveness_url(live)),
                60,
                procs,
            )
            wait_until(
                "the worker to consume its queues (asynctask_worker_ready)",
                lambda: probes.worker_ready(probes.metrics_url(metrics)),
                60,
                procs,
            )
            wait_until(
                "the gateway's cache to sync (its /readyz)",
                lambda: _ready(f"{gateway_url}/readyz"),
                60,
                procs,
            )
            log(
                "devstack",
                f"operator probes: {probes.liveness_url(live)}; worker metrics: "
                f"{probes.metrics_url(metrics)}",
            )
            http_env = {"TOKEN": client_token(cp), "GATEWAY": gateway_url, "NS": "default"}
            with (STATE / "env").open("a") as out:
                out.writelines(f"export {k}='{v}'\n" for k, v in http_env.items())
            log(
                "devstack",
                f"stack up in {time.monotonic() - started:.0f}s; submitting "
                f"{EXAMPLE.relative_to(REPO)}",
            )
            watch = subprocess.Popen(
                [str(cp.bin_dir / "kubectl"), "get", "asynctasks", "-w"], env=env
            )
            time.sleep(0.5)
            print(cp.kubectl("apply", "-f", str(EXAMPLE)).stdout, end="", flush=True)
            cp.kubectl(
                "wait",
                "--for=condition=Completed",
                "asynctask/hello",
                "--timeout=120s",
                timeout=130,
            )
            time.sleep(0.5)
            watch.terminate()
            watch.wait()
            result = cp.kubectl(
                "get", "asynctask", "hello", "-o", "jsonpath={.status.phase} {.status.result}"
            ).stdout
            print(f"\nhello: {result}\n", flush=True)
            if args.once:
                return 0 if result.startswith("Succeeded") and curl_works(env, http_env) else 1
            print(running_message(http_env), flush=True)
            while all(p.poll() is None for p in (operator, worker, gateway)):
                time.sleep(1)
            log("devstack", "the operator, the worker or the gateway exited; stopping")
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            stop(gateway)
            stop(worker)
            stop(operator)


if __name__ == "__main__":
    sys.exit(main())
