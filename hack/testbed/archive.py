"""docker-archive tarballs made by hand: the form ``ctr image import`` and ``buildah pull``
both read, with no registry and no Docker engine.

An archive holds ``manifest.json`` (which config and layers make the tagged image), the
image config (environment, command, the layers' uncompressed digests) and each layer as an
uncompressed tar. The test bed makes two images this way: the pause image (one static
binary) and the Debian base image (one layer: the root filesystem mmdebstrap made).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def image_config(
    diff_ids: list[str], env: list[str], cmd: list[str], user: str = "", workdir: str = "/"
) -> dict[str, Any]:
    """The OCI/Docker image config. ``created`` is fixed, so equal inputs give equal bytes
    (and an equal image id): a rebuild of the same inputs is recognisably the same image."""
    config: dict[str, Any] = {"Env": env, "Cmd": cmd, "WorkingDir": workdir}
    if user:
        config["User"] = user
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [
            {"created": "1970-01-01T00:00:00Z", "created_by": "asynctask test bed"}
            for _ in diff_ids
        ],
    }


def manifest(config_name: str, tag: str, layer_names: list[str]) -> list[dict[str, Any]]:
    return [{"Config": config_name, "RepoTags": [tag], "Layers": layer_names}]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def write_docker_archive(
    out: Path, tag: str, layers: list[Path], env: list[str], cmd: list[str], user: str = ""
) -> None:
    """Write ``out``: an image tagged ``tag`` whose layers are the given uncompressed tars,
    bottom first. Written to a temporary name and renamed, so a crash leaves no half file
    that a later run would take for a cached image."""
    diff_ids = [sha256_file(layer) for layer in layers]
    config = json.dumps(image_config(diff_ids, env, cmd, user), sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    layer_names = [f"{d}/layer.tar" for d in diff_ids]
    partial = out.with_name(out.name + ".partial")
    with tarfile.open(partial, "w") as tar:
        _add_bytes(tar, config_name, config)
        for name, layer in zip(layer_names, layers, strict=True):
            tar.add(layer, arcname=name)
        _add_bytes(
            tar, "manifest.json", json.dumps(manifest(config_name, tag, layer_names)).encode()
        )
    partial.rename(out)


def single_file_layer(out: Path, source: Path, arcname: str) -> None:
    """A layer tar holding one executable file (the pause binary)."""
    with tarfile.open(out, "w") as tar:
        info = tar.gettarinfo(str(source), arcname=arcname)
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0
        info.mode = 0o755
        with source.open("rb") as f:
            tar.addfile(info, f)
