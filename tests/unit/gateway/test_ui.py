"""The dashboard's static files: served with headers that keep the page (and its token) on
its own origin, complete (every module a module imports is shipped), and written so data
never becomes markup or leaves for another origin."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from asynctask_gateway import ui

REPO = Path(__file__).resolve().parents[3]
JS = {name: path.read_text() for name, path in ui.FILES.items() if name.endswith(".js")}


def test_the_page_its_style_and_its_modules_are_shipped() -> None:
    assert {"index.html", "app.css", "js/main.js", "js/api.js"} <= set(ui.FILES)
    for name, source in JS.items():
        for imported in re.findall(r'^import .* from "\./([\w.]+)";$', source, re.MULTILINE):
            assert f"js/{imported}" in ui.FILES, f"{name} imports a missing {imported}"
    html = ui.FILES["index.html"].read_text()
    assert re.findall(r'src="([^"]+)"', html) == ["js/main.js"]


def test_no_inline_script_no_inline_style_no_other_origin() -> None:
    html = ui.FILES["index.html"].read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\sstyle=|\son\w+=", html)
    for name, path in ui.FILES.items():
        text = re.sub(r'xmlns="[^"]*"', "", path.read_text())  # a name, not a request
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), name


def test_data_is_never_parsed_as_markup_and_tokens_never_go_in_a_url() -> None:
    for name, source in JS.items():
        assert not re.search(
            r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", source
        ), name
        assert "localStorage" not in source, name  # sessionStorage: this tab only
        assert not re.search(r"[?&](token|access_token)=", source), name
    assert 'credentials: "omit"' in JS["js/api.js"]  # no cookie is ever sent


async def test_every_file_is_served_with_its_type_and_the_security_headers() -> None:
    app = web.Application()
    ui.add_routes(app)
    async with TestClient(TestServer(app)) as client:
        for path, kind in [
            ("/ui/", "text/html"),
            ("/ui/app.css", "text/css"),
            ("/ui/js/main.js", "text/javascript"),
        ]:
            resp = await client.get(path)
            assert resp.status == 200, path
            assert resp.headers["Content-Type"].startswith(kind), path
            csp = resp.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "connect-src 'self'" in csp
            assert "frame-ancestors 'none'" in csp and "'unsafe-" not in csp
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert resp.headers["Referrer-Policy"] == "no-referrer"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        redirect = await client.get("/ui", allow_redirects=False)
        assert redirect.status == 301 and redirect.headers["Location"] == "/ui/"
        for missing in ("/ui/nothing.js", "/ui/../settings.py", "/ui/js/../../ui.py"):
            assert (await client.get(missing)).status == 404, missing


def test_the_wheel_ships_every_file_as_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["asynctask_gateway"]
    for name in ui.FILES:
        path = PurePosixPath("ui", name)
        # setuptools' globs: "*" stays within one folder
        assert any(
            path.match(p) and len(path.parts) == len(PurePosixPath(p).parts) for p in patterns
        ), name
