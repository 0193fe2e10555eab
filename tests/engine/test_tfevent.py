"""TFRecord framing, event file writing and reading, checked against TensorBoard's own
reader and its pure-Python masked CRC-32C."""

from __future__ import annotations

import errno
import io
import logging
import os
import random

import pytest
from tensorboard.backend.event_processing.event_file_loader import (
    EventFileLoader,
    RawEventFileLoader,
)
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tb_masked_crc32c
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboard.util import tensor_util

from jupyter_guildimg.engine import tfevent
from jupyter_guildimg.engine.tfevent import (
    FILE_VERSION,
    CorruptRecordError,
    EventFileWriter,
    EventReader,
    encode_record,
    iter_records,
    masked_crc32c,
    write_event_file,
)

from helpers import file_size_limit

PAYLOADS = [
    b"",
    b"a",
    b"123456789",
    bytes(range(256)),
    b"\x00" * 8,
    b"\xff" * 1000,
    random.Random(0).randbytes(70_000),
]


def image_event(tag: str, step: int = 0) -> event_pb2.Event:
    image = summary_pb2.Summary.Image(
        height=2, width=3, colorspace=3, encoded_image_string=b"\x89PNG fake " + tag.encode()
    )
    return event_pb2.Event(
        step=step, summary=summary_pb2.Summary(value=[{"tag": tag, "image": image}])
    )


def scalar_event(tag: str, value: float, step: int) -> event_pb2.Event:
    return event_pb2.Event(
        wall_time=1000.0 + step,
        step=step,
        summary=summary_pb2.Summary(value=[{"tag": tag, "simple_value": value}]),
    )


def tensorboard_events(path: str) -> list[event_pb2.Event]:
    """The events TensorBoard's own loader reads from ``path``, as written."""
    return [event_pb2.Event.FromString(raw) for raw in RawEventFileLoader(path).Load()]


def tags(events) -> list[str]:
    return [value.tag for event in events for value in event.summary.value]


# --- framing --------------------------------------------------------------------------


@pytest.mark.parametrize("data", PAYLOADS, ids=lambda data: f"{len(data)}B")
def test_masked_crc_matches_tensorboard(data: bytes) -> None:
    assert masked_crc32c(data) == tb_masked_crc32c(data)


def test_masked_crc_of_the_crc32c_check_string() -> None:
    # CRC-32C("123456789") is 0xE3069283 (RFC 3720); masked as TFRecord does.
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@pytest.mark.parametrize("data", PAYLOADS, ids=lambda data: f"{len(data)}B")
def test_encode_record_matches_tensorboard_record_writer(data: bytes) -> None:
    out = io.BytesIO()
    RecordWriter(out).write(data)
    assert encode_record(data) == out.getvalue()


def test_records_round_trip() -> None:
    stream = io.BytesIO(b"".join(encode_record(data) for data in PAYLOADS))
    assert list(iter_records(stream)) == PAYLOADS


def test_records_written_by_tensorboard_are_read() -> None:
    out = io.BytesIO()
    writer = RecordWriter(out)
    for data in PAYLOADS:
        writer.write(data)
    assert list(iter_records(io.BytesIO(out.getvalue()))) == PAYLOADS


@pytest.mark.parametrize("position", ["length", "length-crc", "data", "data-crc"])
def test_corrupt_record_raises(position: str) -> None:
    second = encode_record(b"second record")
    at = {"length": 0, "length-crc": 9, "data": 14, "data-crc": len(second) - 1}[position]
    broken = bytearray(second)
    broken[at] ^= 0x01
    stream = io.BytesIO(encode_record(b"first") + bytes(broken) + encode_record(b"third"))
    records = iter_records(stream)
    assert next(records) == b"first"
    with pytest.raises(CorruptRecordError):
        next(records)


# --- write_event_file -----------------------------------------------------------------


def test_written_file_is_read_by_tensorboard(tmp_path) -> None:
    path = str(tmp_path / "events.out.tfevents.0000000000.image.x")
    events = [image_event("a.png"), image_event("b/c.jpg", step=3), scalar_event("loss", 0.5, 7)]
    size = write_event_file(path, events)
    assert size == os.path.getsize(path)
    read = tensorboard_events(path)
    assert read[0].file_version == FILE_VERSION == "brain.Event:2"
    assert not read[0].HasField("summary")
    assert read[0].wall_time > 0
    assert read[1:] == events


def test_written_images_pass_tensorboards_compat_layer(tmp_path) -> None:
    # EventFileLoader is what TensorBoard's image plugin data comes through.
    path = str(tmp_path / "events.out.tfevents.1")
    write_event_file(path, [image_event("grid.png", step=2)])
    first, event = EventFileLoader(path).Load()
    assert first.file_version == FILE_VERSION
    (value,) = event.summary.value
    assert value.tag == "grid.png"
    assert value.metadata.plugin_data.plugin_name == "images"
    assert tensor_util.make_ndarray(value.tensor).tolist() == [
        b"3",
        b"2",
        b"\x89PNG fake grid.png",
    ]


def test_modification_time_is_applied(tmp_path) -> None:
    path = str(tmp_path / "events.out.tfevents.1")
    mtime_ns = 1_600_000_000_123_456_789
    write_event_file(path, [image_event("a.png")], mtime_ns=mtime_ns)
    assert os.stat(path).st_mtime_ns == mtime_ns


def test_write_is_atomic_under_a_name_tensorboard_ignores(tmp_path, monkeypatch) -> None:
    path = str(tmp_path / "events.out.tfevents.1")
    renames = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        # At the moment of the rename the final name does not exist yet and the
        # temporary file already holds the whole file.
        renames.append((src, dst, os.path.exists(dst), os.path.getsize(src)))
        real_replace(src, dst)

    monkeypatch.setattr(tfevent.os, "replace", spy)
    size = write_event_file(path, [image_event("a.png"), image_event("b.png")])
    ((src, dst, existed, temp_size),) = renames
    assert dst == path
    assert os.path.dirname(src) == str(tmp_path)
    assert "tfevents" not in os.path.basename(src)
    assert not existed
    assert temp_size == size
    assert os.listdir(tmp_path) == ["events.out.tfevents.1"]


def test_rewrite_replaces_the_previous_file(tmp_path) -> None:
    path = str(tmp_path / "events.out.tfevents.1")
    write_event_file(path, [image_event("old.png")])
    write_event_file(path, [image_event("new.png")])
    assert tags(tensorboard_events(path)) == ["new.png"]
    assert os.listdir(tmp_path) == ["events.out.tfevents.1"]


def test_failed_write_leaves_nothing_behind(tmp_path) -> None:
    event = image_event("a.png")
    event.summary.value[0].image.encoded_image_string = random.Random(0).randbytes(20_000)
    with file_size_limit(4096), pytest.raises(OSError) as caught:
        write_event_file(str(tmp_path / "events.out.tfevents.1"), [event])
    assert caught.value.errno == errno.EFBIG
    assert os.listdir(tmp_path) == []


def test_refused_rename_leaves_nothing_behind(tmp_path) -> None:
    # A directory (not empty) already holds the final name: the rename fails after
    # the whole temporary file was written.
    taken = tmp_path / "events.out.tfevents.1"
    taken.mkdir()
    (taken / "keep").write_bytes(b"")
    with pytest.raises(OSError):
        write_event_file(str(taken), [image_event("a.png")])
    assert os.listdir(tmp_path) == ["events.out.tfevents.1"]
    assert os.listdir(taken) == ["keep"]


# --- EventReader ----------------------------------------------------------------------


def write(directory, name: str, *event_tags: str) -> str:
    path = os.path.join(directory, name)
    write_event_file(path, [image_event(tag) for tag in event_tags])
    return path


def test_reader_yields_summary_events_in_file_name_order(tmp_path) -> None:
    # Written out of order; file names, not creation times, decide.
    write(tmp_path, "events.out.tfevents.0000000002.b", "b1", "b2")
    write(tmp_path, "events.out.tfevents.0000000010.c", "c1")
    write(tmp_path, "events.out.tfevents.0000000001.a", "a1", "a2", "a3")
    write(tmp_path, "notes.txt", "never")
    write(tmp_path, "events.out.0000000000", "never")
    reader = EventReader(tmp_path)
    events = list(reader)
    assert tags(events) == ["a1", "a2", "a3", "b1", "b2", "c1"]
    assert all(event.HasField("summary") for event in events)
    assert reader.errors == []


def test_reader_of_a_missing_directory_yields_nothing(tmp_path) -> None:
    reader = EventReader(tmp_path / "missing")
    assert list(reader) == []
    assert reader.errors == []


def record_offsets(path: str) -> list[int]:
    """Where each record of ``path`` starts, and the file size last."""
    with open(path, "rb") as f:
        data = f.read()
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        pos += 16 + int.from_bytes(data[pos : pos + 8], "little")
    return [*offsets, len(data)]


@pytest.mark.parametrize(
    "cut",
    ["in-length", "in-length-crc", "after-header", "in-data", "in-data-crc"],
)
def test_truncated_tail_stops_cleanly(tmp_path, caplog, cut: str) -> None:
    path = write(tmp_path, "events.out.tfevents.1", "a", "b", "c")
    last_start, end = record_offsets(path)[-2:]
    length = end - last_start - 16
    keep = (
        last_start
        + {
            "in-length": 3,
            "in-length-crc": 10,
            "after-header": 12,
            "in-data": 12 + length // 2,
            "in-data-crc": 12 + length + 2,
        }[cut]
    )
    os.truncate(path, keep)
    write(tmp_path, "events.out.tfevents.2", "next")
    reader = EventReader(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert tags(reader) == ["a", "b", "next"]
    assert reader.errors == []
    assert [r for r in caplog.records if r.name == tfevent.log.name] == []


@pytest.mark.parametrize("position", ["length", "length-crc", "data", "data-crc"])
def test_corrupt_record_is_reported_and_the_next_file_still_read(
    tmp_path, caplog, position: str
) -> None:
    path = write(tmp_path, "events.out.tfevents.1", "a", "b", "c")
    # Record 0 is the version, 1 is "a", 2 is "b": break "b".
    start, end = record_offsets(path)[2:4]
    at = {"length": start + 1, "length-crc": start + 9, "data": start + 20, "data-crc": end - 1}
    at = at[position]
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x40]))
    write(tmp_path, "events.out.tfevents.2", "next", "after")
    reader = EventReader(tmp_path)
    with caplog.at_level(logging.WARNING, logger=tfevent.log.name):
        seen = tags(reader)
    assert seen == ["a", "next", "after"]
    (error,) = reader.errors
    assert path in error
    assert "checksum" in error
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [error]


def test_record_that_is_not_an_event_is_reported_and_skipped(tmp_path, caplog) -> None:
    path = str(tmp_path / "events.out.tfevents.1")
    with open(path, "wb") as f:
        f.write(encode_record(image_event("a").SerializeToString()))
        f.write(encode_record(b"\xff\xff\xff\xff"))  # a valid record, not a valid proto
        f.write(encode_record(image_event("b").SerializeToString()))
    reader = EventReader(tmp_path)
    with caplog.at_level(logging.WARNING, logger=tfevent.log.name):
        assert tags(reader) == ["a", "b"]
    (error,) = reader.errors
    assert path in error
    assert any(r.levelno == logging.WARNING for r in caplog.records)


# --- EventFileWriter ------------------------------------------------------------------


def scalars(path: str) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar TensorBoard reads from ``path``."""
    found = []
    for event in EventFileLoader(path).Load():
        for value in event.summary.value:
            assert value.metadata.plugin_data.plugin_name == "scalars"
            found.append((value.tag, event.step, float(tensor_util.make_ndarray(value.tensor))))
    return found


def test_event_file_writer_scalars_are_read_by_tensorboard(tmp_path) -> None:
    with EventFileWriter(tmp_path / "logs", suffix=".demo") as writer:
        writer.add_scalar("loss", 0.75, step=1)
        writer.add_scalar("loss", 0.5, step=2, wall_time=1234.5)
        writer.add_scalar("acc", 1, step=2)
        # Flushed as it goes: TensorBoard sees the scalars before the writer is closed.
        assert scalars(writer.path) == [("loss", 1, 0.75), ("loss", 2, 0.5), ("acc", 2, 1.0)]
    assert os.path.dirname(writer.path) == str(tmp_path / "logs")
    name = os.path.basename(writer.path)
    assert "tfevents" in name
    assert name.endswith(".demo")
    (first, *rest) = tensorboard_events(writer.path)
    assert first.file_version == FILE_VERSION
    assert rest[1].wall_time == 1234.5
    assert tags(EventReader(tmp_path / "logs")) == ["loss", "loss", "acc"]
