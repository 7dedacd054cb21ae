"""The TypeScript example worker's image, built the way users build it.

* ``node-base``: Debian trixie with its ``nodejs`` (20.x) and ``npm``, made by ``mmdebstrap``
  from Debian packages like the Python base. It stands in for the public
  ``node:20-bookworm-slim`` image that ``worker-ts/examples/Dockerfile`` names by default
  (``ARG BASE_IMAGE``); like that image it has a user ``node`` (uid 1000). Trixie rather
  than bookworm: bookworm's ``nodejs`` is 18, and the SDK's ``engines`` say ``>=20`` (the
  SDK's own code would run on 18, but its tools ask for 20 and users run 20: the tested
  image runs what the package claims).
* ``ts-worker``: ``worker-ts/examples/Dockerfile`` built by buildah with ``--build-arg
  BASE_IMAGE=<node-base>`` and ``worker-ts/`` as its context, so the file users build is the
  file tested.

Both are docker-archives in the same cache as ``testbed.images``, named by a hash of their
inputs.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from testbed._proc import log
from testbed.images import (
    BASE_ENV,
    MMDEBSTRAP_OPTIONS,
    REPO,
    Image,
    build_debian_image,
    build_dockerfile,
    building,
    cache_dir,
    dockerfile_sources,
    hash_inputs,
)

NODE_SUITE = "trixie"  # Debian 13: its nodejs is 20.x, the SDK's engines (>=20)
#: What the Dockerfile's stages need from node:20-bookworm-slim: node and npm (its build
#: stage runs `npm ci`), CA certificates, and the `node` user (passwd, the hook below).
NODE_PACKAGES = ["nodejs", "npm", "ca-certificates", "passwd"]
NODE_OPTIONS = [
    *MMDEBSTRAP_OPTIONS,
    '--customize-hook=chroot "$1" groupadd --gid 1000 node',
    '--customize-hook=chroot "$1" useradd --uid 1000 --gid node --create-home node',
]
WORKER_TS = REPO / "worker-ts"
TS_DOCKERFILE = WORKER_TS / "examples" / "Dockerfile"
TS_REPOSITORY = "localhost/asynctask/ts-worker-example"


def node_base_image() -> Image:
    key = hash_inputs(
        [REPO / "hack/testbed/archive.py"], [NODE_SUITE, *NODE_PACKAGES, *BASE_ENV, *NODE_OPTIONS]
    )
    tag = f"localhost/asynctask/node-base:{key}"
    out = cache_dir() / f"node-base-{key}.tar"
    with building(out) as needed:
        if needed:
            build_debian_image(out, tag, NODE_SUITE, NODE_PACKAGES, NODE_OPTIONS, ["node"])
    return Image(out, tag)


def ts_worker_image(base: Image) -> Image:
    """The example TypeScript worker from its Dockerfile, FROM the local Node base image."""
    sources = [WORKER_TS / s for s in dockerfile_sources(TS_DOCKERFILE.read_text())]
    key = hash_inputs([TS_DOCKERFILE, WORKER_TS / ".dockerignore", *sources], [base.tag])
    tag = f"{TS_REPOSITORY}:{key}"
    out = cache_dir() / f"ts-worker-{key}.tar"
    with building(out) as needed:
        if needed:
            log("images", f"building the TypeScript worker image (buildah, base {base.tag})")
            with tempfile.TemporaryDirectory(prefix="asynctask-buildah-") as tmp:
                build_dockerfile(Path(tmp), out, tag, base, TS_DOCKERFILE, WORKER_TS, {})
                shutil.rmtree(tmp, ignore_errors=True)
    return Image(out, tag)


if __name__ == "__main__":
    built = ts_worker_image(node_base_image())
    print(built.tag, built.archive)
