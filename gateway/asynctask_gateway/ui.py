"""The web dashboard's static files, served at ``/ui/`` (package data in ``ui/``).

The files hold no data and need no token: the page asks the user for a bearer token, keeps
it in ``sessionStorage`` and sends it in the Authorization header of its own ``fetch`` calls
(the stream too, read with ``fetch``, since EventSource cannot set headers). The headers
below keep it on this origin: scripts and styles from this origin only (no inline script),
connections to this origin only, no framing (clickjacking), no Referer (a URL never leaks
anywhere), and a window of its own (``Cross-Origin-Opener-Policy``).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

UI_DIR = Path(__file__).resolve().parent / "ui"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-cache",
}


def ui_files(root: Path = UI_DIR) -> dict[str, Path]:
    """The servable files by their path under /ui/ (only known types; read once)."""
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in CONTENT_TYPES
    }


FILES = ui_files()


async def ui_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("file") or "index.html"
    path = FILES.get(name)
    if path is None:
        raise web.HTTPNotFound(text=f"no file {name!r} in the dashboard")
    return web.Response(
        body=path.read_bytes(),
        headers={"Content-Type": CONTENT_TYPES[path.suffix], **SECURITY_HEADERS},
    )


async def ui_redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/ui/")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ui", ui_redirect, name="ui-redirect")
    app.router.add_get("/ui/", ui_file, name="ui")
    app.router.add_get("/ui/{file:.+}", ui_file, name="ui-file")
