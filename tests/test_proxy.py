"""TensorBoard through the Jupyter server: a real server, a real TensorBoard."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from jupyter_guildimg.project import write_run

from helpers import png

pytestmark = pytest.mark.tensorboard


async def until(condition, seconds: float, what: str):
    """Poll an async condition without blocking the server's loop."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


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
