"""A private S3-compatible server: versitygw, built from its pinned Go module by
``hack/s3/build.sh`` (cached), serving its posix backend from a temporary folder.

The server listens on a free port of 127.0.0.1 with one root access key made for the run.
Each bucket is a folder of :attr:`S3Server.data_dir`, each object a file in it, so a test can
see what is stored without the S3 API. :meth:`S3Server.stop_server` and
:meth:`S3Server.start_server` take the store away and bring it back on the same port with
the same data ("the store is down" faults).

The project itself knows nothing of versitygw: it speaks S3 through boto3 and presigned
URLs, as it does to AWS S3 (docs/payloads.md).
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from testbed._proc import free_port, log, spawn, stop, wait_until
from testbed.service import Service

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "s3" / "build.sh"
REGION = "us-east-1"


def build() -> Path:
    """The folder of the pinned versitygw binary, built on first use (then cached)."""
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building the S3 server failed (exit {proc.returncode})")
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass
class S3Server(Service):
    """A running private S3 server. Use as a context manager, or start()/stop()."""

    workdir: Path | None = None
    port: int = 0
    access_key: str = field(default_factory=lambda: "at" + secrets.token_hex(8))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20))
    region: str = REGION
    _bin: Path | None = None
    _proc: subprocess.Popen[bytes] | None = None
    _own_workdir: bool = False
    workdir_prefix: ClassVar[str] = "asynctask-s3-"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        """The posix backend's folder: a folder per bucket, a file per object."""
        assert self.workdir is not None
        return self.workdir / "data"

    @property
    def _logfile(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "s3.log"

    def _prepare(self) -> None:
        self._bin = build() / "versitygw"

    def _start(self, work: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.start_server()

    def start_server(self) -> None:
        """Start the server (again, after :meth:`stop_server`): same port, same data."""
        if self._proc is not None:
            return
        assert self._bin is not None
        log("s3", f"starting a private S3 server on {self.endpoint}")
        args = [str(self._bin), "--port", f"127.0.0.1:{self.port}", "--quiet"]
        args += ["--access", self.access_key, "--secret", self.secret_key]
        args += ["--region", self.region, "posix", str(self.data_dir)]
        self._proc = spawn(args, self._logfile)
        wait_until(
            f"the S3 server on port {self.port} to answer",
            self._answers,
            60,
            [("s3", self._proc, self._logfile)],
            interval=0.2,
        )
        log("s3", f"ready: {self.endpoint}")

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint, timeout=2).close()
        except urllib.error.HTTPError:
            return True  # an S3 error document (no credentials): the server is up
        return True

    def stop_server(self) -> None:
        """Stop the server but keep its port and data: :meth:`start_server` brings it back."""
        if self._proc is None:
            return
        log("s3", f"stopping the S3 server on port {self.port}")
        stop(self._proc, timeout=10)
        self._proc = None

    def _stop(self) -> None:
        self.stop_server()

    def client(self) -> Any:
        """A boto3 S3 client of the server (SigV4, path-style addressing, the root key)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                signature_version="s3v4",  # presigned URLs too (boto3 defaults to v2 there)
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2},
            ),
        )

    def create_bucket(self, name: str) -> str:
        """Create a bucket (no error if it exists); returns its name."""
        s3 = self.client()
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=name)
        return name

    def env(self, bucket: str) -> dict[str, str]:
        """The settings of the operator and the gateway for this server and ``bucket``."""
        return {
            "ASYNCTASK_S3_ENDPOINT": self.endpoint,
            "ASYNCTASK_S3_BUCKET": bucket,
            "ASYNCTASK_S3_REGION": self.region,
            "ASYNCTASK_S3_PATH_STYLE": "true",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
