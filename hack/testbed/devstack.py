"""The local dev stack: control plane, RabbitMQ, operator, example worker and HTTP gateway,
all local, with the history archive on (a private PostgreSQL, docs/history.md) and large
payloads on (a private S3 server, docs/payloads.md): their data is gone when the stack stops.

``python -m testbed.devstack`` starts everything, submits ``examples/hello.yaml``, shows
``kubectl get asynctasks -w`` until the task Succeeded, then ``examples/report.yaml``, whose
large result is stored in the bucket, prints the README's ``curl`` line with a token for the
gateway, then keeps running until Ctrl-C (``--once``: stop right after the example tasks
finished and the README's ``curl`` submitted one through the gateway).
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
from dataclasses import dataclass, field
from pathlib import Path

from testbed import devstore, probes
from testbed._proc import free_port, log, spawn, stop, wait_until
from testbed.controlplane import REPO, ControlPlane
from testbed.postgres import PostgreSQL
from testbed.rabbitmq import RabbitMQ
from testbed.s3 import S3Server

CRD = REPO / "deploy" / "crds" / "asynctask.dev_asynctasks.yaml"
SCHEDULE_CRD = REPO / "deploy" / "crds" / "asynctask.dev_asynctaskschedules.yaml"
QUEUE_CRD = REPO / "deploy" / "crds" / "asynctask.dev_asyncqueues.yaml"
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
        f"  kubectl get asynctask report -o jsonpath='{{.status.resultRef}}'\n"
        f"The HTTP API (docs/gateway.md), with a token for {CLIENT_SA}:\n"
        f"  export {exports}\n"
        f"{textwrap.indent(readme_curl(), '  ')}\n"
        f"The report's stored result, streamed through the gateway (docs/payloads.md):\n"
        f'  asynctask --gateway "$GATEWAY" --token "$TOKEN" -n "$NS" result report -o report.json\n'
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


def stack_env(cp: ControlPlane, rmq: RabbitMQ) -> dict[str, str]:
    """The environment of the system's processes; what a shell needs goes to .devstack/env."""
    env = cp.env()
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
    return env


@dataclass
class Services:
    """The operator, the example worker and the gateway of the dev stack, with the ports
    their readiness is read from."""

    live: int = field(default_factory=free_port)
    metrics: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=gateway_port)
    procs: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)
    #: The history archive's database: the operator writes it, the gateway reads it (the
    #: worker never gets it).
    archive_url: str = ""
    #: The object store's settings and keys: the operator's and the gateway's only (the
    #: worker gets presigned URLs in its task messages).
    store_env: dict[str, str] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start(self, env: dict[str, str]) -> None:
        python = sys.executable
        logs = {name: STATE / f"{name}.log" for name in ("operator", "worker", "gateway")}
        for logfile in logs.values():
            logfile.write_bytes(b"")  # each run's logs on their own
        log("devstack", f"starting the operator (log: {logs['operator'].relative_to(REPO)})")
        self._spawn(
            "operator",
            [
                python,
                "-m",
                "asynctask_operator",
                "--standalone",
                "--liveness",
                probes.liveness_url(self.live),
            ],
            logs["operator"],
            {
                **env,
                **self.store_env,
                **({"ASYNCTASK_ARCHIVE_URL": self.archive_url} if self.archive_url else {}),
            },
        )
        log("devstack", f"starting the example worker (log: {logs['worker'].relative_to(REPO)})")
        self._spawn(
            "worker",
            [
                python,
                "-m",
                "asynctask_worker",
                "example_tasks:app",
                "--concurrency",
                "2",
                "--metrics-port",
                str(self.metrics),
            ],
            logs["worker"],
            env,
        )
        log(
            "devstack",
            f"starting the HTTP gateway on {self.gateway_url} "
            f"(log: {logs['gateway'].relative_to(REPO)})",
        )
        self._spawn(
            "gateway",
            [python, "-m", "asynctask_gateway"],
            logs["gateway"],
            dict(
                env,
                ASYNCTASK_GATEWAY_PORT=str(self.gateway_port),
                ASYNCTASK_GATEWAY_ADDRESS="127.0.0.1",
                **self.store_env,
                **({"ASYNCTASK_GATEWAY_ARCHIVE_URL": self.archive_url} if self.archive_url else {}),
            ),
        )

    def _spawn(self, name: str, args: list[str], logfile: Path, env: dict[str, str]) -> None:
        self.procs.append((name, spawn(args, logfile, env), logfile))

    def wait_ready(self) -> None:
        """Ready as their probe and metric say (testbed.probes), not as their logs word it."""
        live, metrics = probes.liveness_url(self.live), probes.metrics_url(self.metrics)
        wait_until(
            "the operator to connect to RabbitMQ (its broker probe)",
            lambda: probes.operator_connected(live),
            60,
            self.procs,
        )
        wait_until(
            "the worker to consume its queues (asynctask_worker_ready)",
            lambda: probes.worker_ready(metrics),
            60,
            self.procs,
        )
        wait_until(
            "the gateway's cache to sync (its /readyz)",
            lambda: _ready(f"{self.gateway_url}/readyz"),
            60,
            self.procs,
        )
        log("devstack", f"operator probes: {live}; worker metrics: {metrics}")

    def alive(self) -> bool:
        return all(proc.poll() is None for _, proc, _ in self.procs)

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):
            stop(proc)


def run_example(cp: ControlPlane, env: dict[str, str]) -> str:
    """Submit examples/hello.yaml with ``kubectl get asynctasks -w`` showing it, until it
    completed; returns its phase and result."""
    assert cp.bin_dir is not None
    watch = subprocess.Popen([str(cp.bin_dir / "kubectl"), "get", "asynctasks", "-w"], env=env)
    time.sleep(0.5)
    print(cp.kubectl("apply", "-f", str(EXAMPLE)).stdout, end="", flush=True)
    cp.kubectl(
        "wait", "--for=condition=Completed", "asynctask/hello", "--timeout=120s", timeout=130
    )
    time.sleep(0.5)
    watch.terminate()
    watch.wait()
    return cp.kubectl(
        "get", "asynctask", "hello", "-o", "jsonpath={.status.phase} {.status.result}"
    ).stdout


def serve(
    cp: ControlPlane,
    env: dict[str, str],
    *,
    once: bool,
    started: float,
    archive_url: str = "",
    s3: S3Server | None = None,
) -> int:
    """Start the system's processes, run the examples, then (unless ``once``) keep running
    until Ctrl-C or until one of them exits; the exit code."""
    services = Services(
        archive_url=archive_url, store_env=devstore.store_env(s3) if s3 is not None else {}
    )
    try:
        services.start(env)
        services.wait_ready()
        http_env = {"TOKEN": client_token(cp), "GATEWAY": services.gateway_url, "NS": "default"}
        with (STATE / "env").open("a") as out:
            out.writelines(f"export {k}='{v}'\n" for k, v in http_env.items())
        log(
            "devstack",
            f"stack up in {time.monotonic() - started:.0f}s; submitting "
            f"{EXAMPLE.relative_to(REPO)}",
        )
        result = run_example(cp, env)
        print(f"\nhello: {result}\n", flush=True)
        stored = True
        if s3 is not None:
            stored, line = devstore.report_line(s3, devstore.run_report(cp))
            print(f"{line}\n", flush=True)
        if once:
            ok = result.startswith("Succeeded") and stored
            return 0 if ok and curl_works(env, http_env) else 1
        print(running_message(http_env), flush=True)
        while services.alive():
            time.sleep(1)
        log("devstack", "the operator, the worker or the gateway exited; stopping")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        services.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    parser.add_argument(
        "--once", action="store_true", help="stop once the example task has finished"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    STATE.mkdir(exist_ok=True)
    started = time.monotonic()
    with (
        ControlPlane() as cp,
        RabbitMQ(management=True) as rmq,
        PostgreSQL() as pg,
        S3Server() as s3,
    ):
        env = stack_env(cp, rmq)
        archive_url = pg.create_database("asynctask")
        log("devstack", f"the history archive: {archive_url} (asynctask list --archived)")
        log("devstack", f"large payloads: bucket {devstore.BUCKET} at {s3.endpoint}")
        with (STATE / "env").open("a") as out:
            out.write(devstore.shell_lines(s3))
        log("devstack", "installing the CRDs and the admission policy")
        cp.install_crd(CRD)
        cp.install_crd(SCHEDULE_CRD)
        cp.install_crd(QUEUE_CRD)
        cp.kubectl("apply", "-f", str(ADMISSION))
        return serve(cp, env, once=args.once, started=started, archive_url=archive_url, s3=s3)


if __name__ == "__main__":
    sys.exit(main())
