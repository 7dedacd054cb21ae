"""The client's side of large payloads: what submit uploads, the upload's size and digest
(read in chunks), the checks of a download, and a download to a path that leaves no file
when the bytes are wrong."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import pytest

from asynctask_client.errors import PayloadChecksumMismatch
from asynctask_client.payloads import CHUNK, Checked, Upload, digest_of, into, is_upload
from asynctask_worker.payloads import PayloadRef

DATA = bytes(range(256)) * (CHUNK // 256 + 7)  # more than one chunk


def ref_of(data: bytes, **changes: object) -> PayloadRef:
    fields = {"bucket": "tasks", "key": "asynctask/ns/uploads/x", "size": len(data),
              "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
    return PayloadRef.model_validate({**fields, **changes})


def test_bytes_paths_and_binary_files_are_uploaded_json_values_are_not(tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    path.write_bytes(b"x")
    with path.open("rb") as binary, path.open("r") as text:
        assert all(is_upload(v) for v in (b"x", bytearray(b"x"), memoryview(b"x"), path, binary))
        assert not any(is_upload(v) for v in ({"a": 1}, [1], "text", None, 3, text))


@pytest.mark.parametrize("kind", ["bytes", "path", "file"])
def test_an_upload_knows_its_size_and_digest_after_streaming(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    path.write_bytes(b"skip" + DATA)
    file = path.open("rb")
    file.read(4)  # an upload starts where the file stands
    source: object = {"bytes": DATA, "path": tmp_path / "only.bin", "file": file}[kind]
    (tmp_path / "only.bin").write_bytes(DATA)
    upload = Upload(source)
    assert upload.size == len(DATA)
    chunks = list(upload.chunks())
    assert len(chunks) > 1 and all(len(c) <= CHUNK for c in chunks)
    assert b"".join(chunks) == DATA
    assert upload.check(ref_of(DATA)) == ref_of(DATA)
    file.close()


def test_a_ref_that_names_other_bytes_than_sent_is_refused() -> None:
    upload = Upload(DATA)
    list(upload.chunks())
    with pytest.raises(PayloadChecksumMismatch, match="were sent"):
        upload.check(ref_of(DATA, sha256="0" * 64))


def test_repr_digest_is_read_as_hex() -> None:
    digest = hashlib.sha256(DATA)
    header = f"sha-512=:AAAA:, sha-256=:{base64.b64encode(digest.digest()).decode()}:"
    assert digest_of(header) == digest.hexdigest()
    assert digest_of(None) is None and digest_of("sha-256=:not base64!:") is None


def download(chunks: list[bytes], ref: PayloadRef, announced: str | None = None) -> bytes:
    sink = io.BytesIO()
    checked = Checked(ref, announced)
    for chunk in chunks:
        checked.write(sink.write, chunk)
    checked.verify()
    return sink.getvalue()


def test_a_download_that_matches_its_ref_passes() -> None:
    ref = ref_of(DATA)
    assert download([DATA[:10], DATA[10:]], ref, ref.sha256) == DATA


@pytest.mark.parametrize(
    ("chunks", "announced", "match"),
    [
        ([DATA[:-1]], None, "ended after"),
        ([DATA, b"x"], None, "larger"),
        ([b"y" + DATA[1:]], None, "sha256"),
        ([DATA], "0" * 64, "sha256"),
    ],
)
def test_a_download_that_does_not_match_its_ref_fails(
    chunks: list[bytes], announced: str | None, match: str
) -> None:
    with pytest.raises(PayloadChecksumMismatch, match=match):
        download(chunks, ref_of(DATA), announced)


def test_a_failed_download_to_a_path_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"

    def broken(file: io.BufferedWriter) -> None:
        file.write(b"partial")
        raise PayloadChecksumMismatch("wrong")

    with pytest.raises(PayloadChecksumMismatch):
        into(target, broken)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    into(target, lambda file: file.write(b"whole"))
    assert target.read_bytes() == b"whole" and len(list(tmp_path.iterdir())) == 1
