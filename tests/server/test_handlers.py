"""The REST API on a real Jupyter server."""

from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import time
import zlib
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image
from tornado.httpclient import HTTPClientError

from jupyter_guildimg.guild.project import write_run

from helpers import (
    ReadOnlyAuthorizer,
    jpeg,
    monitor_status,
    png,
    process_running,
    run_pass,
    until,
)

API_ROUTES = [
    ("GET", "status"),
    ("GET", "runs"),
    ("GET", "runs/x"),
    ("GET", "runs/x/images"),
    ("GET", "runs/x/images/a.png"),
    ("POST", "refresh"),
    ("GET", "tensorboard"),
    ("POST", "tensorboard"),
    ("DELETE", "tensorboard"),
    ("GET", "changes"),
    ("GET", "sources"),
    ("POST", "sources"),
    ("DELETE", "sources"),
    ("GET", "selection"),
    ("PUT", "selection"),
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
        body="" if method in ("POST", "PUT") else None,
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


async def test_runs_are_filtered_on_the_server(jp_fetch, guild_home):
    train = write_run(guild_home, op="train", label="lr=0.1 big", files={"a.png": png()})
    evaluation = write_run(guild_home, op="eval", label="lr=0.2", files={"a.png": png()})
    await refresh(jp_fetch)

    async def ids(q):
        return sorted(run["id"] for run in (await get_json(jp_fetch, "runs", q=q))["runs"])

    both = sorted(Path(d).name for d in (train, evaluation))
    assert await ids("EVAL") == [Path(evaluation).name]  # ignoring case
    assert await ids("lr=0.") == both
    assert await ids("lr=0. train") == [Path(train).name]  # every word must match
    assert await ids("big eval") == []
    assert await ids(Path(evaluation).name[:6]) == [Path(evaluation).name]  # the id
    assert await ids("completed") == both  # the status
    assert await ids("   ") == both  # no words: every run
    holding = await get_json(jp_fetch, "runs", q="train", image="a.png")
    assert [run["id"] for run in holding["runs"]] == [Path(train).name]


async def test_a_run_is_named_by_its_id_or_a_unique_prefix(jp_fetch, guild_home):
    first = write_run(guild_home, op="train", files={"a.png": png()})
    second = write_run(guild_home, op="train", files={"a.png": png()})
    # Two ids with the same first characters, to make a prefix ambiguous.
    first = str(Path(first).rename(Path(first).with_name("3f" + "a" * 30)))
    second = str(Path(second).rename(Path(second).with_name("3f" + "b" * 30)))
    await refresh(jp_fetch)

    for key in ("3f" + "a" * 30, "3fa", "3faa"):
        assert (await get_json(jp_fetch, "runs", key))["id"] == Path(first).name
        listing = await get_json(jp_fetch, "runs", key, "images")
        assert listing["run"]["id"] == Path(first).name
        image = await jp_fetch("guildimg", "api", "runs", key, "images", "a.png")
        assert image.code == 200
    for key, message in [
        ("3f", f"several runs match '3f': '{Path(second).name}', '{Path(first).name}'"),
        ("3", "no run '3'"),  # too short for a prefix
        ("4f", "no run '4f'"),
    ]:
        for route in (("runs", key), ("runs", key, "images"), ("runs", key, "images", "a.png")):
            response = await jp_fetch("guildimg", "api", *route, raise_error=False)
            assert response.code == 404, route
            assert message in json.loads(response.body)["message"], route


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
        ({"thumb": "4"}, 400),
        ({"thumb": "15"}, 400),
        ({"thumb": "1025"}, 400),
        ({"thumb": "9000"}, 400),
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


def large_png(width: int, height: int) -> bytes:
    """A valid, small RGBA PNG of transparent pixels that take 4 x ``width`` x ``height``
    bytes once decoded, made row by row (never held decoded here)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    pack = zlib.compressobj(9)
    row = bytes(4 * width + 1)  # filter byte, then the pixels
    idat = b"".join(pack.compress(row) for _ in range(height)) + pack.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


async def test_an_image_too_large_for_a_thumbnail_is_422_and_served_whole(jp_fetch, guild_home):
    # 144 MB decoded: under Pillow's bomb limit (the monitor takes it), past the
    # catalog's cap for a thumbnail.
    data = large_png(6000, 6000)
    run_dir = write_run(guild_home, op="train", files={"big.png": data})
    await refresh(jp_fetch)
    parts = ("guildimg", "api", "runs", Path(run_dir).name, "images", "big.png")
    thumb = await jp_fetch(*parts, params={"thumb": 64}, raise_error=False)
    assert thumb.code == 422
    assert "no thumbnail of 'big.png'" in json.loads(thumb.body)["message"]
    assert (await jp_fetch(*parts)).body == data


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


@pytest.mark.parametrize("timeout", ["nan", "NaN", "inf", "-inf", "-1", "abc"])
async def test_a_change_feed_timeout_that_is_not_seconds_is_400(jp_fetch, timeout):
    response = await jp_fetch(
        "guildimg", "api", "changes", params={"since": 0, "timeout": timeout}, raise_error=False
    )
    assert response.code == 400
    assert "timeout" in json.loads(response.body)["message"]


async def test_change_feed_times_out_with_the_same_generation(jp_fetch):
    await refresh(jp_fetch)
    generation = (await get_json(jp_fetch, "changes", since=-1))["generation"]
    result = await get_json(jp_fetch, "changes", since=generation, timeout=0.2)
    assert result == {"generation": generation}


async def post_tensorboard(jp_fetch, body=""):
    response = await jp_fetch("guildimg", "api", "tensorboard", method="POST", body=body)
    return json.loads(response.body)


@pytest.mark.tensorboard
async def test_tensorboard_is_started_and_stopped_through_the_api(jp_fetch, guildimg):
    started = await post_tensorboard(jp_fetch)
    assert started["status"] == "ready" and started["pid"] == guildimg.tensorboard.pid
    pid = started["pid"]
    # Starting again is idempotent: the same process, ready.
    again = await post_tensorboard(jp_fetch)
    assert (again["status"], again["pid"]) == ("ready", pid)

    stopped = json.loads((await jp_fetch("guildimg", "api", "tensorboard", method="DELETE")).body)

    assert stopped["status"] == "stopped" and stopped["pid"] is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.tensorboard
async def test_concurrent_starts_share_one_start_and_a_restart_is_explicit(jp_fetch, guildimg):
    first, second = await asyncio.gather(post_tensorboard(jp_fetch), post_tensorboard(jp_fetch))
    assert first["status"] == second["status"] == "ready"
    assert first["pid"] == second["pid"] == guildimg.tensorboard.pid

    restarted = await post_tensorboard(jp_fetch, json.dumps({"restart": True}))
    assert restarted["status"] == "ready" and restarted["pid"] != first["pid"]
    assert not process_running(first["pid"])
    kept = await post_tensorboard(jp_fetch, json.dumps({"restart": False}))
    assert kept["pid"] == restarted["pid"]
    await jp_fetch("guildimg", "api", "tensorboard", method="DELETE")


@pytest.mark.parametrize(
    ("body", "message"),
    [("[]", "expected a JSON body"), ("{", "expected a JSON body"), ('{"restart": 1}', "restart")],
)
async def test_a_bad_tensorboard_body_is_400_and_starts_nothing(jp_fetch, guildimg, body, message):
    response = await jp_fetch(
        "guildimg", "api", "tensorboard", method="POST", body=body, raise_error=False
    )
    assert response.code == 400
    assert message in json.loads(response.body)["message"]
    assert guildimg.tensorboard.status == "stopped"


async def test_a_source_added_through_the_api_is_monitored(jp_fetch, tmp_path):
    runs = tmp_path / "lightning_logs"
    (runs / "version_0").mkdir(parents=True)
    (runs / "version_0" / "pred.png").write_bytes(png())

    response = await jp_fetch(
        "guildimg", "api", "sources", method="POST", body=json.dumps({"path": str(runs)})
    )
    assert str(runs) in json.loads(response.body)["sources"]
    await refresh(jp_fetch)  # written by it, or by the monitor's own pass just before

    runs_listed = (await get_json(jp_fetch, "runs"))["runs"]
    assert [(run["name"], run["image_count"]) for run in runs_listed] == [("version_0", 1)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (json.dumps({"path": "/no/such/dir"}), "/no/such/dir"),
        (json.dumps({"path": ""}), "non-empty"),
        ("not json", "expected a JSON body"),
        ("[" * 100_000 + "]" * 100_000, "expected a JSON body"),  # too deep to parse
        (json.dumps(["a list"]), "expected a JSON body"),
    ],
)
async def test_a_bad_source_is_a_clear_400(jp_fetch, body, message):
    response = await jp_fetch(
        "guildimg", "api", "sources", method="POST", body=body, raise_error=False
    )
    assert response.code == 400
    assert message in json.loads(response.body)["message"]


async def sources_call(jp_fetch, method, path):
    if method == "POST":
        body = json.dumps({"path": path})
        return await jp_fetch(
            "guildimg", "api", "sources", method="POST", body=body, raise_error=False
        )
    return await jp_fetch(
        "guildimg", "api", "sources", method="DELETE", params={"path": path}, raise_error=False
    )


async def test_a_source_holding_the_log_dir_or_inside_it_is_refused(jp_fetch, guildimg, tmp_path):
    # Moved in whole, holding a file the monitor did not write: its passes leave it be.
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("a user's")
    inside = (tmp_path / "runs").rename(Path(guildimg.logdir_path, "runs"))
    link = tmp_path / "link-to-tmp"
    link.symlink_to(Path(guildimg.logdir_path).parent)  # the log dir's parent, by a link
    for path, message in [
        ("/", "contains the monitor's log dir"),
        (str(link), "contains the monitor's log dir"),
        (str(inside), "lies inside the monitor's log dir"),
    ]:
        response = await sources_call(jp_fetch, "POST", path)
        assert response.code == 400, path
        assert message in json.loads(response.body)["message"]
    (source,) = (await get_json(jp_fetch, "sources"))["sources"]
    # Capture goes on: "/" would have stopped every run from being mirrored.
    run_dir = write_run(source, op="train", files={"a.png": png()})
    await refresh(jp_fetch)
    (run,) = (await get_json(jp_fetch, "runs"))["runs"]
    assert run["id"] == Path(run_dir).name and run["image_count"] == 1


async def test_a_removed_source_takes_its_runs_with_it(jp_fetch, guildimg, guild_home, tmp_path):
    write_run(guild_home, op="train", files={"kept.png": png()})
    extra = tmp_path / "lightning_logs"
    (extra / "version_0").mkdir(parents=True)
    (extra / "version_0" / "gone.png").write_bytes(png())
    assert (await sources_call(jp_fetch, "POST", str(extra))).code == 200
    await refresh(jp_fetch)
    names = sorted(os.listdir(guildimg.logdir_path))
    assert len(names) == 2 and "version_0" in names

    response = await sources_call(jp_fetch, "DELETE", str(extra))
    assert response.code == 200
    assert json.loads(response.body)["sources"] == [str(guild_home)]
    await refresh(jp_fetch)

    runs = (await get_json(jp_fetch, "runs"))["runs"]
    assert [run["operation"] for run in runs] == ["train"]
    assert "version_0" not in os.listdir(guildimg.logdir_path)  # its summaries went too
    assert len(os.listdir(guildimg.logdir_path)) == 1

    again = await sources_call(jp_fetch, "DELETE", str(extra))
    assert again.code == 404
    assert "not watched" in json.loads(again.body)["message"]
    missing = await jp_fetch("guildimg", "api", "sources", method="DELETE", raise_error=False)
    assert missing.code == 400


@pytest.fixture
def read_only_config(guild_home):
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_guildimg": True},
            "authorizer_class": ReadOnlyAuthorizer,
        },
        # One pass at start, then none for an hour: a refused refresh must not run one.
        "GuildImgApp": {"sources": [str(guild_home)], "interval": 3600.0},
    }


class TestReadOnlyUsers:
    @pytest.fixture
    def jp_server_config(self, read_only_config):
        return read_only_config

    async def test_every_get_works(self, jp_fetch, guildimg, guild_home):
        run_dir = write_run(guild_home, op="train", files={"a.png": png((40, 20))})
        await run_pass(guildimg)
        key = Path(run_dir).name
        for parts, params in [
            (("status",), {}),
            (("runs",), {}),
            (("runs",), {"q": "train"}),
            (("runs", key), {}),
            (("runs", key, "images"), {}),
            (("runs", key, "images", "a.png"), {}),
            (("runs", key, "images", "a.png"), {"thumb": 16}),
            (("tensorboard",), {}),
            (("sources",), {}),
            (("changes",), {"since": -1, "timeout": 0}),
            (("selection",), {}),
        ]:
            response = await jp_fetch("guildimg", "api", *parts, params=params)
            assert response.code == 200, parts
        response = await jp_fetch("guildimg", "api", "nowhere", raise_error=False)
        assert response.code == 404

    async def test_every_change_is_403_and_changes_nothing(self, jp_fetch, guildimg, tmp_path):
        wanted = tmp_path / "wanted"
        wanted.mkdir()

        async def first_index_done() -> bool:
            # The monitor's own first pass, not one run here: that one could come
            # after it and be counted as a pass a refused refresh ran.
            status = await monitor_status(guildimg)
            return status["index"]["done"] and status["passes"] > 0

        await until(first_index_done, 30, "the monitor's first pass")
        passes = -1
        while passes != (status := await monitor_status(guildimg))["passes"]:
            passes = status["passes"]  # and any pass the watcher asked for
            await asyncio.sleep(1.0)
        sources = list(status["sources"])
        for method, route, body in [
            ("POST", "refresh", ""),
            ("POST", "tensorboard", ""),
            ("DELETE", "tensorboard", None),
            ("POST", "sources", json.dumps({"path": str(wanted)})),
            ("DELETE", "sources", None),
            ("PUT", "selection", json.dumps({"mode": "runs", "runs": []})),
        ]:
            params = {"path": sources[0]} if method == "DELETE" and route == "sources" else {}
            response = await jp_fetch(
                "guildimg", "api", route, method=method, body=body, params=params, raise_error=False
            )
            assert response.code == 403, (method, route)
            assert "not authorized" in json.loads(response.body)["message"]
        status = await monitor_status(guildimg)
        assert status["sources"] == sources  # neither added nor removed
        assert status["passes"] == passes
        assert guildimg.tensorboard.status == "stopped" and guildimg.tensorboard.pid is None
        assert (await guildimg.call("selection"))["mode"] == "auto"


# -- which runs TensorBoard shows ---------------------------------------------------------


async def put_selection(jp_fetch, body, raise_error=True):
    response = await jp_fetch(
        "guildimg", "api", "selection", method="PUT", body=json.dumps(body), raise_error=raise_error
    )
    return response if not raise_error else json.loads(response.body)


def view_links(guildimg) -> list[str]:
    """The runs' log dir names linked in the view TensorBoard reads."""
    view_dir = Path(guildimg.view_dir)
    return sorted(path.name for path in view_dir.iterdir() if path.is_symlink())


async def test_a_selection_change_wakes_the_change_feed(jp_fetch, guild_home):
    run = write_run(guild_home, op="train", files={"a.png": png()})
    await refresh(jp_fetch)
    generation = (await get_json(jp_fetch, "changes", since=-1))["generation"]
    waiting = asyncio.ensure_future(get_json(jp_fetch, "changes", since=generation, timeout=20))
    await asyncio.sleep(0.3)
    assert not waiting.done()

    await put_selection(jp_fetch, {"mode": "runs", "runs": []})
    # Clients re-read in_tensorboard at once (a timeout would give the same generation).
    assert (await asyncio.wait_for(waiting, 15))["generation"] > generation
    (listed,) = (await get_json(jp_fetch, "runs"))["runs"]
    assert listed["id"] == Path(run).name and listed["in_tensorboard"] is False


async def test_the_selection_is_read_and_changed_live(jp_fetch, guildimg, guild_home):
    old = write_run(guild_home, op="train", label="old", started=1, files={"a.png": png()})
    new = write_run(guild_home, op="eval", label="new", started=2, files={"a.png": png()})
    await refresh(jp_fetch)
    old_key, new_key = Path(old).name, Path(new).name

    selection = await get_json(jp_fetch, "selection")
    assert selection == {
        "mode": "auto",
        "runs": [new_key, old_key],
        "filter": "",
        "shown": 2,
        "total": 2,
        "limit": 200,
        "summary": "2 of 2 runs",
        "rule": "auto: every run while there are at most 200",
    }
    runs = (await get_json(jp_fetch, "runs"))["runs"]
    assert [run["in_tensorboard"] for run in runs] == [True, True]
    assert len(view_links(guildimg)) == 2

    chosen = await put_selection(jp_fetch, {"mode": "runs", "runs": [old_key[:5]]})
    assert (chosen["mode"], chosen["runs"], chosen["shown"]) == ("runs", [old_key], 1)
    assert await get_json(jp_fetch, "selection") == chosen
    # The catalog still lists every run, and says which ones TensorBoard shows.
    runs = (await get_json(jp_fetch, "runs"))["runs"]
    assert [(run["id"], run["in_tensorboard"]) for run in runs] == [
        (new_key, False),
        (old_key, True),
    ]
    assert (await get_json(jp_fetch, "runs", new_key))["in_tensorboard"] is False
    assert (await get_json(jp_fetch, "runs", old_key, "images"))["run"]["in_tensorboard"]
    (name,) = view_links(guildimg)
    assert name.startswith(old_key[:8])

    filtered = await put_selection(jp_fetch, {"mode": "filter", "filter": "EVAL new"})
    assert (filtered["runs"], filtered["filter"]) == ([new_key], "EVAL new")
    later = write_run(guild_home, op="eval", label="new too", started=3)
    await refresh(jp_fetch)
    assert (await get_json(jp_fetch, "selection"))["runs"] == [Path(later).name, new_key]

    back = await put_selection(jp_fetch, {"mode": "auto"})
    assert (back["mode"], back["shown"], back["filter"]) == ("auto", 3, "")
    assert len(view_links(guildimg)) == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{", "expected a JSON body"),
        ("[]", "expected a JSON body"),
        ('{"mode": "all"}', "mode must be one of 'auto', 'runs', 'filter'"),
        ('{"mode": "auto", "shown": 2}', "unknown key 'shown'"),
        ('{"mode": "runs", "runs": "x"}', "mode 'runs' needs runs"),
        ('{"mode": "filter"}', "mode 'filter' needs filter"),
        ('{"mode": "runs", "runs": ["nope"]}', "no run 'nope'"),
    ],
)
async def test_a_bad_selection_is_a_clear_400_and_changes_nothing(
    jp_fetch, guildimg, guild_home, body, message
):
    write_run(guild_home, op="train", files={"a.png": png()})
    await refresh(jp_fetch)
    response = await jp_fetch(
        "guildimg", "api", "selection", method="PUT", body=body, raise_error=False
    )
    assert response.code == 400
    assert message in json.loads(response.body)["message"]
    assert (await get_json(jp_fetch, "selection"))["shown"] == 1


async def tensorboard_runs(jp_fetch) -> set[str]:
    response = await jp_fetch("guildimg", "tensorboard", "data", "runs", raise_error=False)
    return set(json.loads(response.body)) if response.code == 200 else set()


@pytest.mark.tensorboard
async def test_tensorboard_follows_a_selection_change_without_a_restart(
    jp_fetch, guildimg, guild_home
):
    first = write_run(guild_home, op="train", started=1, files={"a.png": png()})
    second = write_run(guild_home, op="train", started=2, files={"b.png": png()})
    await refresh(jp_fetch)
    names = {
        Path(run_dir).name: f"{name}/.images"
        for run_dir in (first, second)
        for name in view_links(guildimg)
        if name.startswith(Path(run_dir).name[:8])
    }
    assert len(names) == 2
    started = await post_tensorboard(jp_fetch)
    assert started["status"] == "ready"

    async def shows(expected):
        async def check():
            runs = await tensorboard_runs(jp_fetch)
            return {name for name in runs if name.endswith("/.images")} == expected

        return check

    await until(await shows(set(names.values())), 30, "TensorBoard to list both runs")
    await put_selection(jp_fetch, {"mode": "runs", "runs": [Path(first).name]})
    # TensorBoard re-reads its log dir every second; a bound well past that, not a timing.
    await until(await shows({names[Path(first).name]}), 15, "TensorBoard to drop a run")
    await put_selection(jp_fetch, {"mode": "auto"})
    await until(await shows(set(names.values())), 15, "TensorBoard to add it back")
    assert guildimg.tensorboard.pid == started["pid"]  # the same process throughout
    await jp_fetch("guildimg", "api", "tensorboard", method="DELETE")
