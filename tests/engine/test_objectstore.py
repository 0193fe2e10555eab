"""Run sources on object storage, against a real S3 server (SeaweedFS, tests/seaweedfs.py):
Guild homes and run folders under a bucket prefix list like local ones, images are
captured and revised, nothing unchanged is fetched twice, deleted runs go, the bucket
is never written, and a store that stops answering keeps every run."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from jupyter_guildimg.engine.layout import SourceError
from jupyter_guildimg.engine.monitor import RunsMonitor
from jupyter_guildimg.engine.objectstore import ObjectStoreOptions, ObjectStoreSource
from jupyter_guildimg.engine.objectsync import wanted_key
from jupyter_guildimg.engine.runs import GuildHome, open_source, parse_source
from jupyter_guildimg.engine.tbprocess import TensorBoardProcess
from jupyter_guildimg.engine.tfevent import EventFileWriter

from helpers import png, run_logdir, summaries
from seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS, count_requests

STARTED = 1_700_000_000  # seconds


@pytest.fixture
def store(weed: SeaweedFS, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A new bucket for the test; credentials and endpoint in the standard AWS
    environment variables, as a user would set them. Returns the bucket's name."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", weed.endpoint)
    if not weed.process or weed.process.poll() is not None:
        weed.start()  # a test stopped it
    bucket = "t-" + request.node.name.replace("_", "-")[:40].strip("-").lower()
    weed.client().mkdir(bucket)
    return bucket


def guild_run(
    run_id: str,
    *,
    op: str = "train",
    label: str = "",
    exit_status: int | None = 0,
    flags: str = "lr: 0.1\n",
    lock: bool = False,
    images: dict[str, bytes] | None = None,
) -> dict[str, bytes]:
    """The objects of one Guild run (keys relative to the run dir)."""
    files = {
        ".guild/opref": f"guildfile:/p/guild.yml abc123 '' {op}\n".encode(),
        ".guild/attrs/started": f"{(STARTED + int(run_id[0], 16)) * 10**6}\n".encode(),
        ".guild/attrs/flags": flags.encode(),
        "model.ckpt": b"\0" * 4096,  # not an image: never fetched
    }
    if label:
        files[".guild/attrs/label"] = f"{label}\n".encode()
    if exit_status is not None:
        files[".guild/attrs/exit_status"] = f"{exit_status}\n".encode()
    if lock:
        files[".guild/LOCK"] = b"1\n"  # a pid on the machine that runs it
    files.update(images or {})
    return files


def upload(weed: SeaweedFS, base: str, runs: dict[str, dict[str, bytes]]) -> None:
    weed.client().pipe(
        {f"{base}/{run}/{key}": data for run, files in runs.items() for key, data in files.items()}
    )


def options(tmp_path: Path, **kw: Any) -> ObjectStoreOptions:
    """Listings only in passes, when due or asked (``list_soon``), so that a test
    counts every request; the background lister is tested below, and by the server."""
    return ObjectStoreOptions(cache_dir=str(tmp_path / "cache"), background=False, **kw)


A, B, C = "a" * 32, "b" * 32, "c" * 32


def test_a_guild_home_in_a_bucket_lists_as_the_same_home_on_disk(
    weed: SeaweedFS, store: str, tmp_path: Path
) -> None:
    runs = {
        A: guild_run(A, label="first", images={"img.png": png()}),
        B: guild_run(B, op="eval", exit_status=1, flags="batch: 8\nname: x\n"),
        C: guild_run(C, exit_status=None, lock=True),
    }
    upload(weed, f"{store}/home/runs", runs)
    upload(weed, f"{store}/home/trash/runs", {"d" * 32: guild_run("d" * 32)})
    # The same home on disk, read by the local source.
    for run, files in runs.items():
        for key, data in files.items():
            path = tmp_path / "local" / "runs" / run / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    source = open_source(f"guild:s3://{store}/home/", object_options=options(tmp_path))
    assert isinstance(source, ObjectStoreSource) and source.path == f"s3://{store}/home"
    listed = source.list_runs()
    local = GuildHome(tmp_path / "local").list_runs()

    def fields(run: Any) -> tuple[Any, ...]:
        return (run.id, run.operation, run.label, run.started, run.stopped, dict(run.flags))

    assert [fields(r) for r in listed] == [fields(r) for r in local]
    statuses = {r.id: r.status for r in listed}
    # A remote LOCK names a pid of another machine: the run is running there.
    assert statuses == {A: "completed", B: "error", C: "running"}
    assert {r.source for r in listed} == {source.path} and not listed.unreadable
    assert all(r.dir.startswith(source.cache_root + os.sep) for r in listed)
    # One listing; the metadata and the image fetched, the checkpoint and trash never.
    assert source.requests["list"] == 1
    assert source.requests["get"] == sum(len(f) - 1 for f in runs.values())
    assert not any("ckpt" in name for _d, _s, names in os.walk(source.cache_root) for name in names)


def test_images_are_captured_revised_and_an_unchanged_poll_fetches_nothing(
    weed: SeaweedFS, store: str, tmp_path: Path
) -> None:
    upload(weed, f"{store}/h/runs", {A: guild_run(A, images={"img.png": png(), "s/x.jpg": png()})})
    source = open_source(f"s3://{store}/h", object_options=options(tmp_path))  # guessed
    assert isinstance(source, ObjectStoreSource)
    logdir = str(tmp_path / "logdir")
    monitor = RunsMonitor(logdir, source.list_runs, revision_steps=True)
    try:
        report = monitor.run_pass()
        assert source.kind == "guild" and len(report.runs_added) == 1
        run_dir = monitor.views[0].run.dir
        assert sorted(p for _n, p in report.written) == ["img.png", "s/x.jpg"]
        before = weed.snapshot(store)
        gets = source.requests["get"]

        sent = count_requests(source.fs)  # what goes over the wire
        source.list_soon()
        report = monitor.run_pass()
        assert not report.changed and source.requests["list"] == 2
        assert source.requests["get"] == gets  # nothing changed: nothing fetched
        assert dict(sent) == {"ListObjectsV2": 1}

        weed.client().pipe(f"{store}/h/runs/{A}/img.png", png(colour="blue"))
        source.list_soon()
        report = monitor.run_pass()
        assert [p for _n, p in report.written] == ["img.png"]
        assert source.requests["get"] == gets + 1
        assert dict(sent) == {"ListObjectsV2": 2, "GetObject": 1}
        assert len([f for f in summaries(logdir, run_dir) if f.endswith(md5_of("img.png"))]) == 2
        after = weed.snapshot(store)
        assert {k: v for k, v in after.items() if not k.endswith("img.png")} == {
            k: v for k, v in before.items() if not k.endswith("img.png")
        }  # the monitor wrote nothing to the bucket
        assert len(after) == len(before)
    finally:
        monitor.close()

    # A restart over the same cache fetches nothing again.
    again = open_source(f"s3://{store}/h", object_options=options(tmp_path))
    assert isinstance(again, ObjectStoreSource)
    assert [r.id for r in again.list_runs()] == [A] and again.requests == {"list": 1, "get": 0}


def md5_of(relpath: str) -> str:
    import hashlib

    return hashlib.md5(relpath.encode()).hexdigest()


def test_a_deleted_run_disappears_and_a_folder_of_runs_works_too(
    weed: SeaweedFS, store: str, tmp_path: Path
) -> None:
    old = time.time() - 3600
    client = weed.client()
    client.pipe({f"{store}/runs/v0/a.png": png(), f"{store}/runs/v1/b.png": png()})
    source = open_source(f"dir:s3://{store}/runs", object_options=options(tmp_path))
    assert isinstance(source, ObjectStoreSource) and source.kind == "dir"
    monitor = RunsMonitor(str(tmp_path / "logdir"), source.list_runs)
    try:
        report = monitor.run_pass()
        assert sorted(r.run.id for r in monitor.views) == ["v0", "v1"]
        # The objects' own times: written just now, so the runs are running.
        assert {r.run.status for r in monitor.views} == {"running"}
        assert all(r.run.started and r.run.started > old for r in monitor.views)
        client.rm(f"{store}/runs/v1", recursive=True)
        source.list_soon()
        report = monitor.run_pass()
        assert len(report.runs_removed) == 1 and [r.run.id for r in monitor.views] == ["v0"]
        assert not os.path.exists(os.path.join(source.cache.tree, "v1"))
    finally:
        monitor.close()


def test_a_store_that_stops_answering_keeps_every_run_and_capture_resumes(
    weed: SeaweedFS, store: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upload(weed, f"{store}/h/runs", {A: guild_run(A, images={"img.png": png()})})
    source = open_source(f"guild:s3://{store}/h", object_options=options(tmp_path))
    assert isinstance(source, ObjectStoreSource)
    logdir = str(tmp_path / "logdir")
    monitor = RunsMonitor(logdir, source.list_runs, revision_steps=True)
    caplog.set_level(logging.DEBUG, "jupyter_guildimg")
    try:
        monitor.run_pass()
        run_dir = monitor.views[0].run.dir
        weed.stop()
        source.list_soon()
        report = monitor.run_pass()
        assert [v.run.id for v in monitor.views] == [A] and not report.runs_removed
        (problem,) = report.problems
        assert problem.path == source.path and "listing" in problem.message
        assert "EndpointConnectionError" in problem.message
        state = source.status()
        assert state["error"] and state["failures"] == 1 and state["poll_interval"] > 2.0
        # Nothing says a credential: not the problem, the source's state, the log.
        said = json.dumps([monitor.status(), state]) + caplog.text
        assert SECRET_KEY not in said and ACCESS_KEY not in said
        assert len(summaries(logdir, run_dir)) == 1

        weed.start()
        weed.client().pipe(f"{store}/h/runs/{A}/img.png", png(colour="green"))
        source.list_soon()
        report = monitor.run_pass()
        assert [p for _n, p in report.written] == ["img.png"] and source.error == ""
        assert len(summaries(logdir, run_dir)) == 2
    finally:
        monitor.close()


def test_the_background_lister_brings_new_objects_to_the_monitors_thread(
    weed: SeaweedFS, store: str, tmp_path: Path
) -> None:
    upload(weed, f"{store}/h/runs", {A: guild_run(A, images={"a.png": png()})})
    source = open_source(
        f"guild:s3://{store}/h",
        object_options=ObjectStoreOptions(cache_dir=str(tmp_path / "cache"), poll_interval=0.5),
    )
    assert isinstance(source, ObjectStoreSource)
    monitor = RunsMonitor(str(tmp_path / "logdir"), source.list_runs, interval=0.5)
    monitor.start()
    try:
        wait_for(lambda: [v.run.id for v in monitor.views] == [A], "the run")
        weed.client().pipe(f"{store}/h/runs/{A}/b.png", png(colour="blue"))
        wait_for(lambda: "b.png" in monitor.views[0].images, "the new image")
        assert source.status()["requests"]["list"] >= 2
    finally:
        monitor.close()
        source.close()


def wait_for(condition: Any, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_cache_size_bound_is_reported_not_silent(
    weed: SeaweedFS, store: str, tmp_path: Path
) -> None:
    big = png((256, 256), colour="red")
    upload(weed, f"{store}/h/runs", {A: guild_run(A, images={"a.png": big, "b.png": big})})
    source = open_source(
        f"guild:s3://{store}/h", object_options=options(tmp_path, cache_bytes=len(big) + 400)
    )
    monitor = RunsMonitor(str(tmp_path / "logdir"), source.list_runs)
    try:
        report = monitor.run_pass()
        assert len(report.written) == 1  # one image fits
        (problem,) = report.problems
        assert "object cache full" in problem.message and "1 objects" in problem.message
    finally:
        monitor.close()


def test_a_growing_event_file_is_appended_in_place(
    weed: SeaweedFS, store: str, tmp_path: Path
) -> None:
    events = tmp_path / "events"
    writer = EventFileWriter(events)
    writer.add_scalar("loss", 1.0, 0)
    name = os.path.basename(writer.path)
    key = f"{store}/h/runs/{A}/.guild/{name}"
    upload(weed, f"{store}/h/runs", {A: guild_run(A)})
    weed.client().pipe(key, Path(writer.path).read_bytes())
    source = open_source(f"guild:s3://{store}/h", object_options=options(tmp_path))
    assert isinstance(source, ObjectStoreSource)
    source.list_runs()
    copy = os.path.join(source.cache.tree, "runs", A, ".guild", name)
    inode = os.stat(copy).st_ino
    writer.add_scalar("loss", 0.5, 1)
    writer.close()
    weed.client().pipe(key, Path(writer.path).read_bytes())
    source.list_soon()
    source.list_runs()
    # The same file, grown: a reader that holds it open (TensorBoard) reads on.
    assert os.stat(copy).st_ino == inode
    assert Path(copy).read_bytes() == Path(writer.path).read_bytes()


def test_wrong_credentials_are_reported_without_them(
    weed: SeaweedFS,
    store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "not-the-secret-but-secret-anyway"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    source = open_source(f"guild:s3://{store}/h", object_options=options(tmp_path))
    assert isinstance(source, ObjectStoreSource)
    caplog.set_level(logging.DEBUG, "jupyter_guildimg")
    listing = source.list_runs()
    (unreadable,) = listing.unreadable
    assert unreadable.path == source.path and "PermissionError" in unreadable.message
    said = unreadable.message + json.dumps(source.status()) + caplog.text
    assert wrong not in said and ACCESS_KEY not in said


def test_keys_that_would_leave_the_cache_are_never_fetched() -> None:
    for key in ["runs/x/../../../etc/a.png", "runs//a.png", "runs/./a.png", "/a.png"]:
        assert not wanted_key(key, guild=False) and not wanted_key(key, guild=True)
    assert wanted_key("runs/x/img.PNG", guild=True)
    assert wanted_key("runs/x/.guild/attrs/flags", guild=True)
    assert not wanted_key("runs/x/.guild/sourcecode/a.png", guild=True)
    assert not wanted_key("trash/runs/x/img.png", guild=True)
    assert not wanted_key("runs/x/model.ckpt", guild=False)


def test_source_names_and_a_missing_package() -> None:
    assert parse_source("guild:s3://bucket/p/") == ("guild", "s3://bucket/p")
    assert parse_source("S3://bucket/p", root="/somewhere") == (None, "s3://bucket/p")
    with pytest.raises(SourceError, match="no credentials in the URL"):
        parse_source("s3://key:secret@bucket/p")
    # gcsfs is not installed here: the error says what to install.
    with pytest.raises(SourceError, match="gs://"):
        open_source("gs://bucket/p")


@pytest.mark.tensorboard
def test_a_remote_runs_own_scalars_show_in_tensorboard(
    weed: SeaweedFS, store: str, tmp_path: Path
) -> None:
    events = tmp_path / "events"
    with EventFileWriter(events) as writer:
        for step in range(3):
            writer.add_scalar("loss", 1.0 / (step + 1), step)
    (name,) = os.listdir(events)
    upload(weed, f"{store}/h/runs", {A: guild_run(A, images={name: (events / name).read_bytes()})})
    source = open_source(f"guild:s3://{store}/h", object_options=options(tmp_path))
    logdir = str(tmp_path / "logdir")
    monitor = RunsMonitor(logdir, source.list_runs)
    monitor.run_pass()
    monitor.close()
    run_name = os.path.basename(run_logdir(logdir, os.path.join("runs", A)))
    tb = TensorBoardProcess(logdir, runtime_dir=str(tmp_path / "runtime"))

    def scalars() -> list[Any]:
        url = f"{tb.url}data/plugin/scalars/scalars?run={urllib.request.quote(run_name)}&tag=loss"
        with urllib.request.urlopen(url, timeout=10) as response:
            return list(json.load(response))

    async def scenario() -> None:
        await tb.start()
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    found = await asyncio.to_thread(scalars)
                except OSError:
                    found = []
                if len(found) == 3 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert [step for _t, step, _v in found] == [0, 1, 2]
            assert [round(v, 3) for _t, _s, v in found] == [1.0, 0.5, 0.333]
        finally:
            await tb.stop()

    asyncio.run(scenario())
