"""An object-store source on a real Jupyter server, against a real S3 server
(SeaweedFS): added through ``POST sources``, its runs and image bytes served by the
API, a new object listed by the server's own polling, removed again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers import png, until
from seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS

RUN = "e" * 32


@pytest.fixture
def bucket(weed: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bucket holding one Guild run; credentials in the standard environment
    variables (the server inherits them), the endpoint a setting."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    client = weed.client()
    client.mkdir("served")
    run = f"served/home/runs/{RUN}"
    client.pipe(
        {
            f"{run}/.guild/opref": b"guildfile:/p/guild.yml abc '' train\n",
            f"{run}/.guild/attrs/started": b"1700000000000000\n",
            f"{run}/.guild/attrs/exit_status": b"0\n",
            f"{run}/.guild/attrs/label": b"remote\n",
            f"{run}/img.png": png(colour="red"),
        }
    )
    return "served"


@pytest.fixture
def jp_server_config(
    guild_home: Path, bucket: str, weed: SeaweedFS, tmp_path: Path
) -> dict[str, object]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
        "GuildImgApp": {
            "sources": [str(guild_home)],
            "interval": 0.5,
            "s3_endpoint_url": weed.endpoint,
            "object_cache_dir": str(tmp_path / "object-cache"),
            "object_poll_interval": 0.5,
        },
    }


async def api(jp_fetch: Any, *parts: str, **kw: Any) -> Any:
    response = await jp_fetch("guildimg", "api", *parts, **kw)
    return json.loads(response.body) if response.body else None


async def test_a_bucket_added_as_a_source_is_served_and_followed(
    jp_fetch: Any, guildimg: Any, weed: SeaweedFS, bucket: str
) -> None:
    url = f"s3://{bucket}/home"
    sources = await api(
        jp_fetch, "sources", method="POST", body=json.dumps({"path": f"guild:{url}/"})
    )
    assert url in sources["sources"]

    async def listed() -> Any:
        runs = await api(jp_fetch, "runs")
        return [r for r in runs["runs"] if r["id"] == RUN]

    (run,) = await until(listed, 30, "the remote run listed")
    assert run["operation"] == "train" and run["label"] == "remote"
    assert run["status"] == "completed" and run["source"] == url
    key = run["id"]
    image = await jp_fetch("guildimg", "api", "runs", key, "images", "img.png")
    assert image.body == png(colour="red")

    # A new revision written to the bucket is listed by the server's own polling.
    weed.client().pipe(f"{bucket}/home/runs/{RUN}/img.png", png(colour="blue"))

    async def revised() -> Any:
        images = await api(jp_fetch, "runs", key, "images")
        return [i for i in images["images"] if len(i["revisions"]) == 2]

    await until(revised, 30, "the new revision")
    latest = await jp_fetch("guildimg", "api", "runs", key, "images", "img.png")
    assert latest.body == png(colour="blue")

    status = await api(jp_fetch, "status")
    watch = {s["path"]: s for s in status["monitor"]["watch"]["sources"]}
    assert any(s["mode"] == "polling" for s in watch.values())
    assert SECRET_KEY not in json.dumps(status)

    await api(jp_fetch, "sources", method="DELETE", params={"path": url})

    async def gone() -> bool:
        return not await listed()

    await until(gone, 30, "the remote run gone with its source")
