"""The REST API on a real Jupyter server."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image
from tornado.httpclient import HTTPClientError

from jupyter_guildimg.project import write_run

from helpers import jpeg, png

API_ROUTES = [
    ("GET", "status"),
    ("GET", "runs"),
    ("GET", "runs/x/images"),
    ("GET", "runs/x/images/a.png"),
    ("POST", "refresh"),
    ("GET", "tensorboard"),
    ("POST", "tensorboard"),
    ("DELETE", "tensorboard"),
    ("GET", "changes"),
    ("GET", "sources"),
    ("POST", "sources"),
    ("GET", "nowhere"),
]


async def get_json(jp_fetch, *parts, **params):
    response = await jp_fetch("guildimg", "api", *parts, params=params)
    return json.loads(response.body)


async def refresh(jp_fetch):
    response = await jp_fetch("guildimg", "api", "refresh", method="POST", body="")
    return json.loads(response.body)


@pytest.mark.parametrize(("method", "route"), API_ROUTES)
async def test_every_route_needs_authentication(
    jp_serverapp, http_server_client, jp_base_url, method, route
):
    response = await http_server_client.fetch(
        f"{jp_base_url}guildimg/api/{route}",
        method=method,
        body="" if method == "POST" else None,
        raise_error=False,
    )
    assert response.code == 403


async def test_runs_list_and_etag(jp_fetch, guild_home):
    run_dir = write_run(guild_home, op="train", label="first", files={"a.png": png()})
    await refresh(jp_fetch)

    response = await jp_fetch("guildimg", "api", "runs")
    (run,) = json.loads(response.body)["runs"]
    assert run["id"] == Path(run_dir).name
    assert run["short_id"] == Path(run_dir).name[:8]
    assert (run["operation"], run["label"], run["status"]) == ("train", "first", "completed")
    assert run["image_count"] == 1
    assert run["name"].startswith(run["short_id"] + " train ")

    etag = response.headers["Etag"]
    again = await jp_fetch(
        "guildimg", "api", "runs", headers={"If-None-Match": etag}, raise_error=False
    )
    assert again.code == 304


async def test_runs_can_be_narrowed_to_those_holding_an_image_path(jp_fetch, guild_home):
    both = [write_run(guild_home, op="train", files={"plots/loss.png": png()}) for _ in range(2)]
    write_run(guild_home, op="train", files={"other.png": png()})
    await refresh(jp_fetch)

    holding = await get_json(jp_fetch, "runs", image="plots/loss.png")
    assert sorted(run["id"] for run in holding["runs"]) == sorted(Path(d).name for d in both)
    assert (await get_json(jp_fetch, "runs", image="nowhere.png"))["runs"] == []
    assert len((await get_json(jp_fetch, "runs"))["runs"]) == 3


async def test_images_with_revisions_and_their_bytes(jp_fetch, guild_home):
    first, second = png((20, 10), "red"), png((30, 15), "blue")
    run_dir = write_run(
        guild_home, op="train", files={"samples/a.png": first, "b.jpg": jpeg((64, 48))}
    )
    await refresh(jp_fetch)
    Path(run_dir, "samples", "a.png").write_bytes(second)
    report = await refresh(jp_fetch)
    assert report["written"] == [{"run": report["written"][0]["run"], "path": "samples/a.png"}]
    key = Path(run_dir).name

    listing = await get_json(jp_fetch, "runs", key, "images")
    images = {image["path"]: image["revisions"] for image in listing["images"]}
    assert sorted(images) == ["b.jpg", "samples/a.png"]
    newest, oldest = images["samples/a.png"]
    assert (newest["width"], newest["height"], newest["size"]) == (30, 15, len(second))
    assert (oldest["width"], oldest["height"], oldest["size"]) == (20, 10, len(first))
    assert newest["revision"] > oldest["revision"]

    latest = await jp_fetch("guildimg", "api", "runs", key, "images", "samples/a.png")
    assert latest.body == second
    assert latest.headers["Content-Type"] == "image/png"
    assert "no-cache" in latest.headers["Cache-Control"]

    past = await jp_fetch(
        "guildimg",
        "api",
        "runs",
        key,
        "images",
        "samples/a.png",
        params={"rev": oldest["revision"]},
    )
    assert past.body == first
    assert "immutable" in past.headers["Cache-Control"]

    thumb = await jp_fetch("guildimg", "api", "runs", key, "images", "b.jpg", params={"thumb": 32})
    assert thumb.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.body)).size == (32, 24)


@pytest.mark.parametrize(
    "path",
    [
        "../attrs/flags",
        "..%2F..%2F.guild%2Fopref",
        "%2Fetc%2Fpasswd",
        "samples/../a.png",
        "a.png%00",
        "nothing.png",
    ],
)
async def test_paths_outside_what_was_captured_are_404(jp_fetch, guild_home, path):
    run_dir = write_run(guild_home, op="train", files={"a.png": png(), "samples/b.png": png()})
    await refresh(jp_fetch)
    key = Path(run_dir).name
    response = await jp_fetch("guildimg", "api", "runs", key, "images", path, raise_error=False)
    assert response.code == 404
    assert "message" in json.loads(response.body)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"rev": "-1"}, 400),
        ({"rev": "abc"}, 400),
        ({"rev": "99999999999"}, 400),
        ({"rev": "7"}, 404),
        ({"thumb": "4"}, 404),
        ({"thumb": "9000"}, 404),
    ],
)
async def test_bad_revisions_and_sizes(jp_fetch, guild_home, params, code):
    run_dir = write_run(guild_home, op="train", files={"a.png": png()})
    await refresh(jp_fetch)
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(
            "guildimg", "api", "runs", Path(run_dir).name, "images", "a.png", params=params
        )
    assert caught.value.code == code


async def test_unknown_runs_are_404(jp_fetch):
    for parts in (("runs", "0" * 32, "images"), ("runs", quote("../..", safe=""), "images")):
        response = await jp_fetch("guildimg", "api", *parts, raise_error=False)
        assert response.code == 404


async def test_status_reports_monitor_and_tensorboard(jp_fetch, guild_home, guildimg):
    write_run(guild_home, op="train", files={"a.png": b"not an image"})
    await refresh(jp_fetch)
    status = await get_json(jp_fetch, "status")
    assert status["monitor"]["sources"] == [str(guild_home)]
    assert status["monitor"]["runs"] == 1
    assert status["monitor"]["last_pass"] <= time.time()
    assert any("not an image" in p["message"] for p in status["monitor"]["problems"])
    assert status["tensorboard"]["status"] == "stopped"


async def test_change_feed_wakes_a_waiting_client_when_a_pass_finds_an_image(jp_fetch, guild_home):
    await refresh(jp_fetch)
    generation = (await get_json(jp_fetch, "changes", since=-1))["generation"]
    waiting = asyncio.ensure_future(get_json(jp_fetch, "changes", since=generation, timeout=20))
    await asyncio.sleep(0.3)
    assert not waiting.done()

    write_run(guild_home, op="train", files={"new.png": png()})
    result = await asyncio.wait_for(waiting, 15)
    # Woken by the monitor thread's pass (a timeout would give the same generation);
    # how fast is measured in benchmarks/latency.py.
    assert result["generation"] > generation


async def test_change_feed_times_out_with_the_same_generation(jp_fetch):
    await refresh(jp_fetch)
    generation = (await get_json(jp_fetch, "changes", since=-1))["generation"]
    result = await get_json(jp_fetch, "changes", since=generation, timeout=0.2)
    assert result == {"generation": generation}


@pytest.mark.tensorboard
async def test_tensorboard_is_started_and_stopped_through_the_api(jp_fetch, guildimg):
    started = json.loads(
        (await jp_fetch("guildimg", "api", "tensorboard", method="POST", body="")).body
    )
    assert started["status"] == "ready" and started["pid"] == guildimg.tensorboard.pid
    pid = started["pid"]

    stopped = json.loads((await jp_fetch("guildimg", "api", "tensorboard", method="DELETE")).body)

    assert stopped["status"] == "stopped" and stopped["pid"] is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_source_added_through_the_api_is_monitored(jp_fetch, tmp_path):
    runs = tmp_path / "lightning_logs"
    (runs / "version_0").mkdir(parents=True)
    (runs / "version_0" / "pred.png").write_bytes(png())

    response = await jp_fetch(
        "guildimg", "api", "sources", method="POST", body=json.dumps({"path": str(runs)})
    )
    assert str(runs) in json.loads(response.body)["sources"]
    report = await refresh(jp_fetch)

    assert {"run": "version_0", "path": "pred.png"} in report["written"]
    names = [run["name"] for run in (await get_json(jp_fetch, "runs"))["runs"]]
    assert "version_0" in names


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (json.dumps({"path": "/no/such/dir"}), "/no/such/dir"),
        (json.dumps({"path": ""}), "non-empty"),
        ("not json", "expected a JSON body"),
    ],
)
async def test_a_bad_source_is_a_clear_400(jp_fetch, body, message):
    response = await jp_fetch(
        "guildimg", "api", "sources", method="POST", body=body, raise_error=False
    )
    assert response.code == 400
    assert message in json.loads(response.body)["message"]
