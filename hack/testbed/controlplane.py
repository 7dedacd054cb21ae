"""A real, local Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager.

The binaries are built from pinned Go modules by ``hack/controlplane/build.sh`` (cached
between runs). This module generates a CA, serving and client certificates and the
service-account signing key, starts the three components on 127.0.0.1 with RBAC
authorization, waits for ``/readyz`` and writes an admin kubeconfig. ``stop()`` (or
leaving the ``with`` block) ends every process it started and removes its files.

No kubelet runs: Deployments get ReplicaSets and Pods objects, but no container starts.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from testbed._proc import free_port, log, spawn, stop, wait_until
from testbed.service import Service

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "controlplane" / "build.sh"
SERVICE_CIDR = "10.96.0.0/16"  # allocated to Service objects only; nothing is routed
#: Every write is audited (reads are not), so tests can count the API calls a task costs.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  verbs: [get, list, watch]
- level: None
  nonResourceURLs: ["*"]
- level: Metadata
"""


#: Opt-in for benchmarks only: serve ``/debug/pprof`` (the admin may read it). Off by
#: default: the test bed runs as a production apiserver is configured.
PROFILING_ENV = "ASYNCTASK_TESTBED_APISERVER_PROFILING"


def profiling_enabled() -> bool:
    """Whether the apiserver serves ``/debug/pprof`` (the variable set to ``1``)."""
    return os.environ.get(PROFILING_ENV, "") == "1"


def build_binaries() -> Path:
    """Build (or reuse from cache) the pinned binaries; returns their directory."""
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building the control plane failed (exit {proc.returncode})")
    return Path(proc.stdout.strip().splitlines()[-1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _signed_cert(pki: Path, name: str, subj: str, extensions: str) -> None:
    """A new key and certificate ``name.{key,crt}`` for ``subj``, signed by the test bed's
    CA with the given X.509 extensions (one per line)."""
    (pki / f"{name}.ext").write_text(extensions)
    _openssl(
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        subj,
        cwd=pki,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.crt",
        cwd=pki,
    )


def _client_cert(pki: Path, name: str, cn: str, org: str | None = None) -> None:
    subj = f"/CN={cn}" + (f"/O={org}" if org else "")
    _signed_cert(pki, name, subj, "extendedKeyUsage=clientAuth\n")


def generate_pki(pki: Path, address: str = "127.0.0.1") -> None:
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/CN=asynctask-testbed-ca",
        cwd=pki,
    )
    extra = "" if address == "127.0.0.1" else f"IP:{address},"
    sans = (
        f"subjectAltName={extra}IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _signed_cert(pki, "apiserver", "/CN=kube-apiserver", sans)
    _client_cert(pki, "admin", "asynctask-admin", "system:masters")
    _client_cert(pki, "controller-manager", "system:kube-controller-manager")
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: asynctask-testbed
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: {user}@asynctask-testbed
  context:
    cluster: asynctask-testbed
    user: {user}
    namespace: default
current-context: {user}@asynctask-testbed
"""


@dataclass
class ControlPlane(Service):
    """A running control plane. Use as a context manager, or call start()/stop()."""

    workdir: Path | None = None
    bin_dir: Path | None = None
    server: str = ""
    etcd_url: str = ""  # etcd's client URL (its v3 JSON gateway serves watches of every change)
    kubeconfig: Path = field(default=Path())
    audit_log: Path = field(default=Path())
    _procs: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)
    _own_workdir: bool = False
    workdir_prefix: ClassVar[str] = "asynctask-controlplane-"
    #: Where the apiserver listens and what it advertises (the ``kubernetes`` Service's
    #: endpoint). Loopback unless pods must reach it: the test bed's node passes its own IP.
    address: str = "127.0.0.1"
    _api_args: list[str] = field(default_factory=list)
    _admin_tls: ssl.SSLContext | None = None

    def _prepare(self) -> None:
        self.bin_dir = self.bin_dir or build_binaries()

    def _start(self, work: Path) -> None:
        pki = work / "pki"
        log("controlplane", f"generating certificates in {pki}")
        generate_pki(pki, self.address)
        etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.server = f"https://{self.address}:{api_port}"
        self._start_etcd(work, etcd_peer)
        self._start_first_apiserver(work, pki, api_port)
        self._start_controller_manager(work, pki)
        log("controlplane", f"ready: {self.server}, kubeconfig {self.kubeconfig}")

    def _bin(self, name: str) -> str:
        assert self.bin_dir is not None
        return str(self.bin_dir / name)

    def _spawn(self, name: str, args: list[str], logfile: Path) -> None:
        self._procs.append((name, spawn(args, logfile), logfile))

    def _start_etcd(self, work: Path, peer_port: int) -> None:
        etcd_url, peer_url = self.etcd_url, f"http://127.0.0.1:{peer_port}"
        log("controlplane", f"starting etcd on {etcd_url}")
        args = [
            self._bin("etcd"),
            "--name",
            "testbed",
            "--data-dir",
            str(work / "etcd"),
            "--listen-client-urls",
            etcd_url,
            "--advertise-client-urls",
            etcd_url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
            "--initial-cluster",
            f"testbed={peer_url}",
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
        ]
        self._spawn("etcd", args, work / "etcd.log")
        wait_until("etcd health", lambda: _http_ok(f"{etcd_url}/health"), 60, self._procs)

    def _start_first_apiserver(self, work: Path, pki: Path, port: int) -> None:
        (work / "audit-policy.yaml").write_text(AUDIT_POLICY)
        self.audit_log = work / "audit.log"
        log("controlplane", f"starting kube-apiserver on {self.server} (authorization: Node,RBAC)")
        self._api_args = self._apiserver_args(work, pki, port)
        self._spawn("kube-apiserver", self._api_args, work / "kube-apiserver.log")
        admin = kubeconfig(
            self.server, pki / "ca.crt", pki / "admin.crt", pki / "admin.key", "admin"
        )
        self.kubeconfig = work / "admin.kubeconfig"
        self.kubeconfig.write_text(admin)
        ctx = self._admin_tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self._wait_apiserver_ready()

    def _apiserver_args(self, work: Path, pki: Path, port: int) -> list[str]:
        return [
            self._bin("kube-apiserver"),
            "--etcd-servers",
            self.etcd_url,
            "--bind-address",
            self.address,
            "--advertise-address",
            self.address,
            "--secure-port",
            str(port),
            "--tls-cert-file",
            str(pki / "apiserver.crt"),
            "--tls-private-key-file",
            str(pki / "apiserver.key"),
            "--client-ca-file",
            str(pki / "ca.crt"),
            "--authorization-mode",
            "Node,RBAC",
            "--service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file",
            str(pki / "sa.pub"),
            "--service-account-signing-key-file",
            str(pki / "sa.key"),
            "--service-cluster-ip-range",
            SERVICE_CIDR,
            "--allow-privileged=false",
            # A node of the test bed (testbed.node) is reached by its IP: its name resolves
            # nowhere (kubectl logs/exec would fail with "no such host").
            "--kubelet-preferred-address-types",
            "InternalIP,Hostname",
            "--enable-priority-and-fairness=true",
            f"--profiling={str(profiling_enabled()).lower()}",
            "--v=1",
            "--audit-policy-file",
            str(work / "audit-policy.yaml"),
            "--audit-log-path",
            str(self.audit_log),
            "--audit-log-maxsize",
            "500",
            "--audit-log-maxbackup",
            "1",
        ]

    def _start_controller_manager(self, work: Path, pki: Path) -> None:
        log("controlplane", "starting kube-controller-manager")
        kcm_config = work / "controller-manager.kubeconfig"
        kcm_config.write_text(
            kubeconfig(
                self.server,
                pki / "ca.crt",
                pki / "controller-manager.crt",
                pki / "controller-manager.key",
                "system:kube-controller-manager",
            )
        )
        args = [
            self._bin("kube-controller-manager"),
            "--kubeconfig",
            str(kcm_config),
            "--authentication-kubeconfig",
            str(kcm_config),
            "--authorization-kubeconfig",
            str(kcm_config),
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            str(free_port()),
            "--service-account-private-key-file",
            str(pki / "sa.key"),
            "--root-ca-file",
            str(pki / "ca.crt"),
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--controllers",
            "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route",
            "--v=1",
        ]
        self._spawn("kube-controller-manager", args, work / "kube-controller-manager.log")
        # The controller manager is ready when it has made the default ServiceAccount.
        ctx = self._admin_tls
        wait_until(
            "kube-controller-manager (default ServiceAccount)",
            lambda: _http_ok(
                f"{self.server}/api/v1/namespaces/default/serviceaccounts/default", ctx
            ),
            120,
            self._procs,
        )

    def _wait_apiserver_ready(self) -> None:
        ctx = self._admin_tls
        wait_until(
            "kube-apiserver /readyz",
            lambda: _http_ok(f"{self.server}/readyz", ctx),
            120,
            self._procs,
        )

    # an apiserver outage, as clients see it: same address, same etcd, same objects --------

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver (etcd and the controller manager keep running): every
        client's calls and watches fail until :meth:`start_apiserver`."""
        (entry,) = [p for p in self._procs if p[0] == "kube-apiserver"]
        log("controlplane", "stopping kube-apiserver (an outage)")
        stop(entry[1])
        self._procs.remove(entry)

    def start_apiserver(self) -> None:
        """Start kube-apiserver again on the same port and etcd; returns once it is ready."""
        assert self._api_args and self.workdir is not None, "start() the control plane first"
        if any(p[0] == "kube-apiserver" for p in self._procs):
            return
        log("controlplane", f"starting kube-apiserver again on {self.server}")
        api_log = self.workdir / "kube-apiserver.log"
        self._procs.insert(1, ("kube-apiserver", spawn(self._api_args, api_log), api_log))
        self._wait_apiserver_ready()

    def env(self) -> dict[str, str]:
        """Environment for child processes: KUBECONFIG and the pinned kubectl first on PATH."""
        assert self.bin_dir is not None
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None
        return subprocess.run(
            [str(self.bin_dir / "kubectl"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            check=check,
            input=input,
            timeout=timeout,
        )

    def install_crd(self, manifest: Path, *, server_side: bool = False) -> None:
        """Apply a CRD and return once it serves: Established, and a watch of its
        resource accepted. Just after Established, the apiserver refuses watches for a
        moment with 429 "storage is (re)initializing"; an operator started then (kopf)
        logs an ERROR per refused watch. kubectl waits as the 429's Retry-After says."""
        apply = ["apply", "-o", "json", "-f", str(manifest)]
        if server_side:
            apply[1:1] = ["--server-side", "--force-conflicts"]
        crd = json.loads(self.kubectl(*apply).stdout)
        self.kubectl(
            "wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s"
        )
        spec, plural = crd["spec"], crd["spec"]["names"]["plural"]
        (version,) = [v["name"] for v in spec["versions"] if v.get("storage")]
        watch = f"/apis/{spec['group']}/{version}/{plural}?watch=1&timeoutSeconds=1"
        wait_until(
            f"the apiserver to serve watches of {plural}",
            lambda: self.kubectl("get", "--raw", watch, check=False).returncode == 0,
            60,
            self._procs,
        )

    def writes(self, namespace: str) -> list[dict[str, Any]]:
        """The audited write requests (create, update, patch, delete) in ``namespace``,
        in order: verb, resource, subresource, name, user and response code of each."""
        out = []
        for line in self.audit_log.read_text().splitlines():
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if ref.get("namespace") != namespace or event.get("stage") != "ResponseComplete":
                continue
            out.append(
                {
                    "verb": event["verb"],
                    "resource": ref.get("resource"),
                    "subresource": ref.get("subresource"),
                    "name": ref.get("name"),
                    "user": event["user"]["username"],
                    "code": event.get("responseStatus", {}).get("code"),
                }
            )
        return out

    def cpu_profile(self, seconds: int) -> bytes:
        """The apiserver's CPU profile over the next ``seconds`` (pprof's protobuf, gzip),
        read with the admin's credentials; needs :data:`PROFILING_ENV` set at start."""
        if not profiling_enabled():
            raise RuntimeError(f"start the control plane with {PROFILING_ENV}=1 to profile it")
        url = f"{self.server}/debug/pprof/profile?seconds={seconds}"
        with urllib.request.urlopen(url, timeout=seconds + 60, context=self._admin_tls) as resp:
            return bytes(resp.read())

    def logs(self) -> dict[str, Path]:
        return {name: logfile for name, _, logfile in self._procs}

    def pids(self) -> dict[str, int]:
        """The process id of each running component (etcd, kube-apiserver...)."""
        return {name: proc.pid for name, proc, _ in self._procs if proc.poll() is None}

    def _stop(self) -> None:
        for name, proc, _ in reversed(self._procs):
            log("controlplane", f"stopping {name}")
            stop(proc)
        self._procs.clear()


def _http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
        return bool(resp.status == 200)
