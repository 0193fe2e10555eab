"""TensorBoard through the Jupyter server: a real server, a real TensorBoard."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from tornado.httpclient import AsyncHTTPClient

from jupyter_guildimg.guild.project import write_run

from helpers import ReadOnlyAuthorizer, png, until

pytestmark = pytest.mark.tensorboard


async def tb_get(jp_fetch, path: str, **params):
    parts = ["guildimg", "tensorboard", *path.split("/")] if path else ["guildimg", "tensorboard/"]
    return await jp_fetch(*parts, params=params, raise_error=False)


async def ready(jp_fetch):
    async def answered():
        response = await tb_get(jp_fetch, "data/runs")
        return response.code == 200

    await until(answered, 90, "TensorBoard through the proxy")


async def test_the_proxy_shows_starting_then_tensorboard(jp_fetch):
    first = await tb_get(jp_fetch, "")
    assert first.code == 503
    assert b"Starting TensorBoard" in first.body
    await ready(jp_fetch)
    page = await tb_get(jp_fetch, "")
    assert page.code == 200
    assert b"<tb-webapp>" in page.body


async def test_tensorboards_fonts_come_through_the_proxy_not_the_server_root(jp_fetch, caplog):
    await ready(jp_fetch)
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    page = await tb_get(jp_fetch, "")
    assert page.code == 200
    text = page.body.decode()
    fonts = sorted(set(re.findall(r"url\((font-roboto/[^)]+\.woff2)\)", text)))
    # Every font it names is relative to the page (so, below the proxy), and is served.
    assert len(fonts) > 20 and "url(/" not in text
    for font in fonts:
        response = await tb_get(jp_fetch, font)
        assert response.code == 200, font
        assert response.body[:4] == b"wOF2"
    # What a page load costs the server's log: no 404, nothing outside the proxy.
    lines = [r.getMessage() for r in caplog.records]
    assert not [line for line in lines if " 404 " in line or "404 GET" in line], lines
    assert not [line for line in lines if "GET /font-roboto" in line]


async def test_a_new_image_reaches_tensorboard_through_the_proxy(jp_fetch, guild_home):
    write_run(guild_home, op="train", files={"first.png": png()})
    await ready(jp_fetch)
    run_dir = write_run(guild_home, op="train", files={"fresh.png": png((24, 12), "green")})

    async def tags():
        response = await tb_get(jp_fetch, "data/plugin/images/tags")
        runs = json.loads(response.body)
        names = [r for r in runs if r.startswith(Path(run_dir).name[:8])]
        return names[0] if names and "fresh.png" in runs[names[0]] else None

    run = await until(tags, 30, "the new image's tag")
    listing = await tb_get(
        jp_fetch, "data/plugin/images/images", run=run, tag="fresh.png", sample=0
    )
    query = json.loads(listing.body)[-1]["query"]
    data = await jp_fetch(
        "guildimg", "tensorboard", "data", "plugin", "images", f"individualImage?{query}"
    )
    assert data.body == png((24, 12), "green")


async def test_tensorboard_posts_need_the_servers_own_origin(jp_fetch, jp_http_port):
    await ready(jp_fetch)
    body = json.dumps({"experimentName": ""})
    own = f"http://127.0.0.1:{jp_http_port}"
    for headers, code in [
        ({"Origin": own}, 200),
        ({"Referer": own + "/lab"}, 200),
        ({"Origin": "http://evil.example"}, 403),
        ({}, 403),
    ]:
        response = await jp_fetch(
            "guildimg",
            "tensorboard",
            "data",
            "plugin",
            "hparams",
            "experiment",
            method="POST",
            body=body,
            raise_error=False,
            headers={"Content-Type": "application/json", "X-XSRF-Protected": "1", **headers},
        )
        assert response.code == code, headers


async def test_missing_slash_redirects(jp_fetch):
    response = await jp_fetch("guildimg", "tensorboard", follow_redirects=False, raise_error=False)
    assert response.code == 302
    assert response.headers["Location"].endswith("/guildimg/tensorboard/")


async def test_the_proxy_needs_authentication(jp_serverapp, http_server_client, jp_base_url):
    for path in ("guildimg/tensorboard/", "guildimg/tensorboard/data/runs"):
        response = await http_server_client.fetch(
            jp_base_url + path, follow_redirects=False, raise_error=False
        )
        assert response.code in (302, 403)
        assert b"tensorboard" not in response.body.lower()
        if response.code == 302:
            assert "/login" in response.headers["Location"]


async def test_an_unauthenticated_post_costs_one_short_log_line(
    jp_serverapp, http_server_client, jp_base_url, caplog
):
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    response = await http_server_client.fetch(
        f"{jp_base_url}guildimg/tensorboard/data/plugin/hparams/experiment",
        method="POST",
        body="{}",
        raise_error=False,
    )
    assert response.code == 403
    assert [r for r in caplog.records if r.exc_info] == []
    assert "Traceback" not in caplog.text
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(line) < 200 and "403 POST" in line


async def direct_get(port: int, path: str, **kwargs):
    client = AsyncHTTPClient(force_instance=True)
    try:
        return await client.fetch(f"http://127.0.0.1:{port}{path}", raise_error=False, **kwargs)
    finally:
        client.close()


def proc_file(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


async def test_tensorboard_answers_only_the_proxy_and_its_secret_stays_inside(
    jp_fetch, jp_serverapp, jp_base_url, jp_runtime_dir, guildimg, caplog, monkeypatch
):
    # In the server's environment when TensorBoard starts: it must not reach TensorBoard.
    monkeypatch.setenv("SOME_API_TOKEN", "leak-me-not")
    caplog.set_level(logging.DEBUG)
    await ready(jp_fetch)
    tb = guildimg.tensorboard
    secret = tb.served_prefix.rsplit("/", 1)[-1]
    assert len(secret) >= 32 and tb.served_prefix == f"/{secret}"

    # Straight to TensorBoard's port without the secret: 404 from TensorBoard itself,
    # at its root and at the proxy's path alike.
    old_prefix = unquote(jp_base_url) + "guildimg/tensorboard"
    for path in ("/", "/data/runs", old_prefix + "/", old_prefix + "/data/runs"):
        assert (await direct_get(tb.port, path)).code == 404, path
    assert (await direct_get(tb.port, f"/{secret}/data/runs")).code == 200  # what the proxy does
    assert (await tb_get(jp_fetch, "data/runs")).code == 200

    # What comes back through the proxy names the public path only.
    moved = await jp_fetch(
        "guildimg", "tensorboard", "experiment", "x", follow_redirects=False, raise_error=False
    )
    assert moved.code == 301
    assert moved.headers["Location"] == f"{jp_base_url}guildimg/tensorboard/experiment/x/"
    for route in ("data/environment", "data/plugins_listing"):
        for encoding in ("gzip", "identity"):
            response = await jp_fetch(
                "guildimg", "tensorboard", *route.split("/"), headers={"Accept-Encoding": encoding}
            )
            assert response.code == 200 and secret.encode() not in response.body, route
    environment = json.loads((await tb_get(jp_fetch, "data/environment")).body)
    assert "guildimg/tensorboard" in json.dumps(environment["debug"])  # named, publicly

    # Nowhere else to read it: the command lines, the state, the API, the pid record, logs.
    pids = [tb.pid] + [
        int(p) for p in os.listdir("/proc") if p.isdigit() and os.getpgid(int(p)) == tb.pid
    ]
    for pid in pids:
        assert secret.encode() not in proc_file(pid, "cmdline")
    assert secret not in json.dumps(tb.state())
    assert secret.encode() not in (await jp_fetch("guildimg", "api", "status")).body
    (record,) = jp_runtime_dir.glob("jupyter_guildimg-tensorboard-*.json")
    assert secret not in record.read_text()
    assert secret not in caplog.text and "Proxying request to" in caplog.text
    info = Path(tempfile.gettempdir(), ".tensorboard-info", f"pid-{tb.pid}.info")
    assert not info.exists()  # TensorBoard's own, world-readable, info file names it

    # TensorBoard's environment: nothing secret of the server's.
    environ = dict(
        item.split(b"=", 1) for item in proc_file(tb.pid, "environ").split(b"\0") if item
    )
    assert b"SOME_API_TOKEN" not in environ
    assert jp_serverapp.identity_provider.token.encode() not in proc_file(tb.pid, "environ")
    assert os.stat(environ[b"TMPDIR"]).st_mode & 0o077 == 0  # its own private TMPDIR


class TestReadOnlyUsers:
    @pytest.fixture
    def jp_server_config(self, guild_home):
        return {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_guildimg": True},
                "authorizer_class": ReadOnlyAuthorizer,
            },
            "GuildImgApp": {"sources": [str(guild_home)], "interval": 0.5},
        }

    async def test_a_reader_cannot_start_tensorboard_but_can_use_it(
        self, jp_fetch, guildimg, jp_http_port
    ):
        for _ in range(2):
            page = await tb_get(jp_fetch, "")
            assert page.code == 403 and b"not allowed to start it" in page.body
        retry = await jp_fetch(
            "guildimg",
            "tensorboard/",
            method="POST",
            body="",
            headers={"Origin": f"http://127.0.0.1:{jp_http_port}"},
            follow_redirects=False,
            raise_error=False,
        )
        assert retry.code == 403
        await asyncio.sleep(0.5)
        assert guildimg.tensorboard.status == "stopped" and guildimg.tensorboard.pid is None

        assert (await guildimg.tensorboard.start()).outcome == "started"  # by someone allowed
        assert (await tb_get(jp_fetch, "")).code == 200
        assert (await tb_get(jp_fetch, "data/runs")).code == 200
        query = await jp_fetch(  # TensorBoard's POSTs are queries: reading
            "guildimg",
            "tensorboard",
            "data",
            "plugin",
            "hparams",
            "experiment",
            method="POST",
            body=json.dumps({"experimentName": ""}),
            headers={
                "Origin": f"http://127.0.0.1:{jp_http_port}",
                "Content-Type": "application/json",
                "X-XSRF-Protected": "1",
            },
            raise_error=False,
        )
        assert query.code == 200
