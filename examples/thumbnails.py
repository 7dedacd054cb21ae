"""Thumbnails: a complete AsyncTask worker (the example of docs/writing-a-worker.md).

Serve it with ``asynctask-worker thumbnails:app``; submit work with an AsyncTask whose
``spec.queue`` is ``thumbnails``. Images are binary PGM/PPM files (P5/P6), so that the
example needs nothing beyond the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from asynctask_worker import App, TaskContext, TaskFailed

app = App("thumbnails")


class ThumbnailRequest(BaseModel):
    """``spec.request`` of a thumbnails task, validated before the handler runs."""

    source: str  # path of the image
    output_dir: str
    sizes: list[int] = Field(default=[128, 64], min_length=1)  # longest side, in pixels


@dataclass
class Image:
    magic: bytes  # b"P5" (grey) or b"P6" (colour)
    width: int
    height: int
    pixels: bytes  # one byte per channel, row after row

    @property
    def channels(self) -> int:
        return 3 if self.magic == b"P6" else 1


@app.task("thumbnails")
def make_thumbnails(request: ThumbnailRequest, ctx: TaskContext) -> dict[str, list[str]]:
    ctx.logger.info("making %d thumbnail(s) of %s", len(request.sizes), request.source)
    image = read_image(Path(request.source))
    out_dir = Path(request.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for done, size in enumerate(request.sizes, start=1):
        ctx.raise_if_cancelled()  # cancelled or out of time: stop between two thumbnails
        thumb = shrink(image, size)
        path = out_dir / f"{Path(request.source).stem}-{size}.pnm"
        path.write_bytes(
            b"%s\n%d %d\n255\n" % (thumb.magic, thumb.width, thumb.height) + thumb.pixels
        )
        made.append(str(path))
        ctx.progress(100 * done / len(request.sizes), f"{size}px done")
    return {"thumbnails": made}


def read_image(path: Path) -> Image:
    """Parse a binary PGM/PPM file; refuse anything else as a business failure."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TaskFailed(f"{path} does not exist", reason="SourceNotFound") from None
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:  # magic, width, height, maxval; `#` starts a comment
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while end < len(data) and not data[end : end + 1].isspace():
            end += 1
        if end == pos:
            break
        fields.append(data[pos:end])
        pos = end
    if len(fields) < 4 or fields[0] not in (b"P5", b"P6") or fields[3] != b"255":
        raise TaskFailed(f"{path} is not an 8-bit binary PGM/PPM image", reason="UnsupportedImage")
    image = Image(fields[0], int(fields[1]), int(fields[2]), data[pos + 1 :])
    if len(image.pixels) < image.width * image.height * image.channels:
        raise TaskFailed(f"{path} is truncated", reason="UnsupportedImage")
    return image


def shrink(image: Image, size: int) -> Image:
    """Nearest-neighbour downscale so that the longest side is at most ``size``."""
    scale = min(1.0, size / max(image.width, image.height))
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    c = image.channels
    rows = []
    for y in range(height):
        sy = min(image.height - 1, int(y / scale))
        for x in range(width):
            src = (sy * image.width + min(image.width - 1, int(x / scale))) * c
            rows.append(image.pixels[src : src + c])
    return Image(image.magic, width, height, b"".join(rows))
