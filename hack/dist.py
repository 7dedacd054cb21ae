"""``make dist``: the release's artifacts, built and checked, in ``dist/`` (or ``--out DIR``).

* the wheel and the sdist of the ``asynctask-k8s`` distribution (``python -m build``),
  checked by ``twine check``;
* the chart (``helm lint``, then ``helm package``);
* the image, as an OCI archive made by buildah from the Dockerfile (the test bed's build,
  ``testbed.images``, cached by the hash of its inputs: a warm run copies it);
* ``SHA256SUMS`` over all of them.

It prints what it built, with sizes. Run as ``PYTHONPATH=hack python hack/dist.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed import images

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "deploy" / "helm" / "asynctask"
#: What a run writes into its folder (and removes from it first).
ARTIFACTS = [
    "asynctask_k8s-*.whl",
    "asynctask_k8s-*.tar.gz",
    "asynctask-*.tgz",
    "asynctask-image-*.oci.tar",
    "SHA256SUMS",
]


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


@contextmanager
def progress(what: str, every: float = 30.0) -> Iterator[None]:
    """Say what starts, a line every ``every`` seconds while it runs, and how long it took."""
    say(what)
    done = threading.Event()
    start = time.monotonic()

    def beat() -> None:
        while not done.wait(every):
            print(f"    ... {time.monotonic() - start:.0f} s", flush=True)

    ticker = threading.Thread(target=beat, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        print(f"    done in {time.monotonic() - start:.1f} s", flush=True)


def run(*args: str, cwd: Path = REPO) -> str:
    """Run a command; its output is printed (what twine check and helm lint say)."""
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed (exit {proc.returncode}):\n{output}")
    return output


def helm() -> str:
    """The pinned helm (hack/helm/build.sh builds it once; its last line is the folder)."""
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "helm" / "build.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return str(Path(proc.stdout.strip().splitlines()[-1]) / "helm")


def python_packages(out: Path) -> list[Path]:
    with progress("the wheel and the sdist (python -m build)"):
        run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(REPO))
    built = sorted([*out.glob("asynctask_k8s-*.whl"), *out.glob("asynctask_k8s-*.tar.gz")])
    if len(built) != 2:
        raise SystemExit(f"expected one wheel and one sdist, got {built}")
    print(run(sys.executable, "-m", "twine", "--no-color", "check", "--strict", *map(str, built)))
    return built


def chart(out: Path) -> Path:
    binary = helm()
    with progress("the chart (helm lint, helm package)"):
        print(run(binary, "lint", str(CHART)))
        run(binary, "package", str(CHART), "--destination", str(out))
    (packaged,) = out.glob("asynctask-*.tgz")
    return packaged


def image(out: Path) -> Path:
    with progress("the image (buildah, from the Dockerfile; minutes when its inputs changed)"):
        built = images.project_image(images.base_image())
    assert built.oci is not None
    target = out / f"asynctask-image-{images.project_version()}.oci.tar"
    shutil.copyfile(built.oci, target)
    return target


def sha256sums(out: Path, files: list[Path]) -> Path:
    sums = out / "SHA256SUMS"
    lines = []
    for f in files:
        digest = hashlib.sha256()
        with f.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        lines.append(f"{digest.hexdigest()}  {f.name}\n")
    sums.write_text("".join(lines))
    return sums


def size(path: Path) -> str:
    n = float(path.stat().st_size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def build(out: Path, steps: list[Callable[[Path], Path | list[Path]]]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS:  # the previous run's files only: nothing else in ``out`` is touched
        for f in out.glob(old):
            f.unlink()
    files: list[Path] = []
    for step in steps:
        made = step(out)
        files += made if isinstance(made, list) else [made]
    return [*files, sha256sums(out, files)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make dist", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="default: dist/")
    parser.add_argument("--no-image", action="store_true", help="skip the image")
    args = parser.parse_args(argv)
    say(f"asynctask {images.project_version()} into {args.out}")
    steps: list[Callable[[Path], Path | list[Path]]] = [python_packages, chart]
    if not args.no_image:
        steps.append(image)
    files = build(args.out, steps)
    say("built:")
    for f in files:
        print(f"    {size(f):>10}  {f.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
