"""The images the test bed's node runs, all made on this machine (there is no registry).

* ``pause``: the pod sandbox, one static Go binary (``hack/images/pause``).
* ``base``: Debian bookworm with Python 3.11, made by ``mmdebstrap`` from Debian packages. It
  stands in for the public ``python:3.11-slim`` image the Dockerfile names by default.
* ``project``: the project's image, built **from the project's Dockerfile** by Debian's
  ``buildah`` (chroot isolation, vfs storage) with ``--build-arg BASE_IMAGE=<base>``, so the
  file users build is the file tested. The build also fills the Dockerfile's VERSION,
  REVISION and SOURCE arguments (the OCI labels), and writes the same image a second time
  as an OCI archive tagged with the release version: what ``make dist`` ships.

Each is a docker-archive tarball in the cache (``~/.cache/asynctask/images``), named by a
hash of its inputs: a warm run reuses it, a changed input makes a new one. ``import_all``
loads them into a containerd's ``k8s.io`` namespace, where the kubelet finds them.

* ``ts-worker``: the TypeScript example worker from ``worker-ts/examples/Dockerfile``, FROM a
  local Node base image (``testbed.ts_image``).

``python -m testbed.images`` builds the first three, ``python -m testbed.ts_image`` the last;
they print their archives and tags.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testbed._proc import log
from testbed.archive import single_file_layer, write_docker_archive
from testbed.nodeconfig import PAUSE_IMAGE

REPO = Path(__file__).resolve().parents[2]
PAUSE_SRC = REPO / "hack" / "images" / "pause"
DOCKERFILE = REPO / "Dockerfile"
SUITE = "bookworm"  # Debian 12: its python3 is 3.11, the version the Dockerfile pins
#: What the Dockerfile's stages need from a python:3.11-slim image: `python`, `pip`, venv,
#: and useradd/groupadd (passwd) for the runtime stage's user.
BASE_PACKAGES = [
    "python3",
    "python3-venv",
    "python3-pip",
    "python-is-python3",
    "passwd",
    "ca-certificates",
]
BASE_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
#: How mmdebstrap makes the base image's root filesystem (part of its cache key).
MMDEBSTRAP_OPTIONS = [
    "--variant=minbase",
    "--mode=root",
    "--format=tar",
    "--skip=output/dev",  # device nodes come from the container runtime
    '--aptopt=Acquire::Languages "none"',
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
]
PROJECT_REPOSITORY = "localhost/asynctask"
VERSION_FILE = REPO / "worker" / "asynctask_worker" / "_version.py"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's system trust store


@dataclass(frozen=True)
class Image:
    """A built image: its docker-archive in the cache and the tag it carries."""

    archive: Path
    tag: str
    #: The same image as an OCI archive tagged ``<repository>:<version>`` (the project's only).
    oci: Path | None = None


def cache_dir() -> Path:
    """The same cache root as hack/lib/cache.sh."""
    root = os.environ.get("ASYNCTASK_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asynctask"
    )
    path = Path(root) / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def hash_inputs(paths: Iterable[Path], extra: Iterable[str] = ()) -> str:
    """16 hex digits over files (directories recursively, in a stable order, names
    included; bytecode caches left out) and extra strings."""
    digest = hashlib.sha256()
    for text in extra:
        digest.update(text.encode() + b"\0")
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc" or ".egg-info" in str(f):
                continue
            digest.update(str(f.relative_to(REPO)).encode() + b"\0")
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def dockerfile_sources(dockerfile: str) -> list[str]:
    """The build-context paths the Dockerfile copies (COPY without --from): what the
    project image's cache key must cover, so a change to any of them rebuilds it."""
    sources: list[str] = []
    for raw in dockerfile.splitlines():
        words = raw.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]) or len(args) < 2:
            continue
        sources.extend(a.rstrip("/") for a in args[:-1])
    return sources


def _run(args: list[str], what: str, **kwargs: object) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}): {' '.join(args[:3])}…\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return str(proc.stdout)


@contextmanager
def building(out: Path) -> Iterator[bool]:
    """Hold ``out``'s build lock; yields whether it still needs building (another process
    may have built it while this one waited), so concurrent runs build an image once."""
    with (out.parent / f"{out.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield not out.exists()


def _go_version() -> str:
    return _run(["go", "env", "GOVERSION"], "go env").strip()


def pause_image() -> Image:
    key = hash_inputs([PAUSE_SRC, REPO / "hack/testbed/archive.py"], [_go_version()])
    out = cache_dir() / f"pause-{key}.tar"
    with building(out) as needed:
        if needed:
            _build_pause(out)
    return Image(out, PAUSE_IMAGE)


def _build_pause(out: Path) -> None:
    log("images", "building the pause image (go build)")
    with tempfile.TemporaryDirectory(prefix="asynctask-pause-") as tmp:
        binary, layer = Path(tmp) / "pause", Path(tmp) / "layer.tar"
        _run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(binary), "."],
            "building pause",
            cwd=PAUSE_SRC,
            env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"},
        )
        single_file_layer(layer, binary, "pause")
        write_docker_archive(
            out, PAUSE_IMAGE, [layer], env=BASE_ENV, cmd=["/pause"], user="65535:65535"
        )


def base_image() -> Image:
    key = hash_inputs(
        [REPO / "hack/testbed/archive.py"], [SUITE, *BASE_PACKAGES, *BASE_ENV, *MMDEBSTRAP_OPTIONS]
    )
    tag = f"localhost/asynctask/python-base:{key}"
    out = cache_dir() / f"base-{key}.tar"
    with building(out) as needed:
        if needed:
            _build_base(out, tag)
    return Image(out, tag)


def _build_base(out: Path, tag: str) -> None:
    build_debian_image(out, tag, SUITE, BASE_PACKAGES, MMDEBSTRAP_OPTIONS, ["python3"])


def build_debian_image(
    out: Path, tag: str, suite: str, packages: list[str], options: list[str], cmd: list[str]
) -> None:
    """A base image: Debian ``suite`` with ``packages``, made by mmdebstrap."""
    log(
        "images",
        f"building a base image: Debian {suite} + {' '.join(packages)} "
        "(mmdebstrap, first run only)",
    )
    with tempfile.TemporaryDirectory(prefix="asynctask-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        _run(
            ["mmdebstrap", *options, f"--include={','.join(packages)}", suite, str(rootfs)],
            "mmdebstrap",
        )
        write_docker_archive(out, tag, [rootfs], env=BASE_ENV, cmd=cmd)


def _buildah(storage: Path, *args: str, what: str, cwd: Path | None = None) -> str:
    return _run(
        [
            "buildah",
            "--root",
            str(storage / "root"),
            "--runroot",
            str(storage / "run"),
            "--storage-driver",
            "vfs",
            *args,
        ],
        what,
        cwd=cwd,
    )


def project_version() -> str:
    """The one version (asynctask_worker/_version.py), read without importing the SDK."""
    found = re.search(r'^__version__ = "([^"]+)"$', VERSION_FILE.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no __version__ in {VERSION_FILE.relative_to(REPO)}")
    return found.group(1)


def _git(*args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else ""


def source_revision(paths: Iterable[Path]) -> str:
    """The last commit that changed ``paths`` (``-dirty`` when they differ from it), or
    ``unknown`` outside a git checkout: the image's revision label. A commit that leaves the
    image's inputs alone keeps the cached image."""
    names = [str(p.relative_to(REPO)) for p in paths]
    commit = _git("log", "-1", "--format=%H", "--", *names)
    if not commit:
        return "unknown"
    return commit + ("-dirty" if _git("status", "--porcelain", "--", *names) else "")


def build_args(inputs: Iterable[Path]) -> dict[str, str]:
    """The Dockerfile's label arguments: the version, the revision, the source repository
    (git's ``origin``, if any)."""
    return {
        "VERSION": project_version(),
        "REVISION": source_revision(inputs),
        "SOURCE": _git("remote", "get-url", "origin"),
    }


def project_image(base: Image) -> Image:
    """The project's image from its Dockerfile, FROM the local base image."""
    sources = [REPO / s for s in dockerfile_sources(DOCKERFILE.read_text())]
    inputs = [DOCKERFILE, REPO / ".dockerignore", *sources]
    args = build_args(inputs)
    key = hash_inputs(inputs, [base.tag, *(f"{k}={v}" for k, v in sorted(args.items()))])
    tag = f"{PROJECT_REPOSITORY}:{key}"
    out = cache_dir() / f"project-{key}.tar"
    oci = cache_dir() / f"project-{key}.oci.tar"
    with building(oci) as needed:
        if needed:
            _build_project(out, oci, tag, base, args)
    return Image(out, tag, oci)


def _build_project(out: Path, oci: Path, tag: str, base: Image, args: dict[str, str]) -> None:
    log("images", f"building the project image from the Dockerfile (buildah, base {base.tag})")
    with tempfile.TemporaryDirectory(prefix="asynctask-buildah-") as tmp:
        storage = Path(tmp)
        build_dockerfile(storage, out, tag, base, DOCKERFILE, REPO, args)
        _push_release(storage, tag, f"{PROJECT_REPOSITORY}:{args['VERSION']}", oci)
        # vfs storage keeps full copies of every layer; nothing of it is needed any more.
        shutil.rmtree(storage, ignore_errors=True)


def build_dockerfile(
    storage: Path,
    out: Path,
    tag: str,
    base: Image,
    dockerfile: Path,
    context: Path,
    args: dict[str, str],
) -> None:
    """``buildah bud`` of ``dockerfile`` FROM ``base`` (``--build-arg BASE_IMAGE``), written
    to the docker-archive ``out`` as ``tag``; ``storage`` is buildah's (vfs) storage."""
    _buildah(
        storage,
        "pull",
        "--quiet",
        f"docker-archive:{base.archive}",
        what="buildah pull of the base image",
    )
    # The build's RUN steps see this machine's CA bundle (read-only, not in the image):
    # pip and npm reach their registries through whatever TLS-inspecting proxy the machine
    # trusts.
    _buildah(
        storage,
        "bud",
        "--isolation",
        "chroot",
        "--pull-never",
        "--layers=false",
        "--volume",
        f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro",
        "--build-arg",
        f"BASE_IMAGE={base.tag}",
        *(f"--build-arg={name}={value}" for name, value in args.items()),
        "-t",
        tag,
        "-f",
        str(dockerfile),
        str(context),
        what=f"buildah bud of {dockerfile.relative_to(REPO)}",
        cwd=context,
    )
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    _buildah(
        storage,
        "push",
        "--quiet",
        tag,
        f"docker-archive:{partial}:{tag}",
        what="buildah push to a docker-archive",
    )
    partial.rename(out)


def _push_release(storage: Path, tag: str, release: str, oci: Path) -> None:
    """The release's archive: OCI layout, the image named ``release`` (its ref.name)."""
    _buildah(storage, "tag", tag, release, what="buildah tag")
    partial = oci.with_name(oci.name + ".partial")
    partial.unlink(missing_ok=True)
    _buildah(
        storage,
        "push",
        "--quiet",
        release,
        f"oci-archive:{partial}:{release}",
        what="buildah push to an oci-archive",
    )
    partial.rename(oci)


def build_all() -> list[Image]:
    """What every node gets (the TypeScript worker's image only goes where a test needs it)."""
    base = base_image()
    return [pause_image(), base, project_image(base)]


def import_all(images: Iterable[Image], socket: Path) -> None:
    """Load the archives into containerd's ``k8s.io`` namespace (the CRI's)."""
    for image in images:
        log("images", f"importing {image.tag} into containerd")
        _run(
            [
                "ctr",
                "--address",
                str(socket),
                "--namespace",
                "k8s.io",
                "images",
                "import",
                str(image.archive),
            ],
            f"ctr import of {image.tag}",
        )


if __name__ == "__main__":
    for built in build_all():
        print(built.tag, built.archive)
