"""TensorBoard event files: TFRecord framing, an atomic writer and a tolerant reader.

A record is ``uint64 length | uint32 masked_crc32c(length) | data |
uint32 masked_crc32c(data)``, little-endian. CRC-32C comes from the ``crc32c``
package (C, hardware-accelerated where the CPU allows), not computed in Python.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import crc32c
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2, summary_pb2

from .layout import TEMP_PREFIX

__all__ = [
    "FILE_VERSION",
    "TEMP_PREFIX",
    "CorruptRecordError",
    "EventFileWriter",
    "EventReader",
    "encode_record",
    "event_file_names",
    "iter_records",
    "masked_crc32c",
    "read_events",
    "write_event_file",
]

log = logging.getLogger(__name__)

FILE_VERSION = "brain.Event:2"

_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_HEADER_SIZE = _LENGTH.size + _CRC.size
_MASK_DELTA = 0xA282EAD8


class CorruptRecordError(ValueError):
    """A record whose length or data does not match its CRC: the rest of the file
    cannot be framed reliably."""


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C TFRecord stores for ``data``."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def encode_record(data: bytes) -> bytes:
    """``data`` framed as one TFRecord."""
    length = _LENGTH.pack(len(data))
    return b"".join(
        (length, _CRC.pack(masked_crc32c(length)), data, _CRC.pack(masked_crc32c(data)))
    )


def iter_records(f: BinaryIO) -> Iterator[bytes]:
    """The record payloads of an open file.

    Stops without error at a truncated tail (a record still being written);
    raises :class:`CorruptRecordError` when a CRC does not match.
    """
    while True:
        header = f.read(_HEADER_SIZE)
        if len(header) < _HEADER_SIZE:
            return
        length_bytes = header[: _LENGTH.size]
        (length_crc,) = _CRC.unpack_from(header, _LENGTH.size)
        if masked_crc32c(length_bytes) != length_crc:
            raise CorruptRecordError(f"bad length checksum at offset {f.tell() - _HEADER_SIZE}")
        (length,) = _LENGTH.unpack(length_bytes)
        body = f.read(length + _CRC.size)
        if len(body) < length + _CRC.size:
            return
        data = body[:length]
        if masked_crc32c(data) != _CRC.unpack_from(body, length)[0]:
            raise CorruptRecordError(
                f"bad data checksum in record at offset {f.tell() - len(body) - _HEADER_SIZE}"
            )
        yield data


def _version_record() -> bytes:
    return encode_record(
        event_pb2.Event(wall_time=time.time(), file_version=FILE_VERSION).SerializeToString()
    )


def write_event_file(
    path: str, events: Iterable[event_pb2.Event], *, mtime_ns: int | None = None
) -> int:
    """Write a complete event file (version record first, then ``events``) at ``path``.

    The file is written under a temporary name in the same directory and renamed
    into place, so a reader sees either nothing or the whole file; if anything
    fails (a full disk, a rename refused), the temporary file is removed and the
    error raised. The temporary name (:data:`~.layout.TEMP_PREFIX` and hex) is one
    :func:`~.layout.is_own_file` knows. ``mtime_ns``, if given, becomes the file's
    modification time. Returns the number of bytes.
    """
    payload = b"".join([_version_record()] + [encode_record(e.SerializeToString()) for e in events])
    directory = os.path.dirname(path)
    temp = os.path.join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)  # can fail too (a delayed write error): the file is then unsafe
        os.replace(temp, path)
    except BaseException:
        _remove_temp(temp)
        raise
    return len(payload)


def _remove_temp(temp: str) -> None:
    try:
        os.unlink(temp)
    except FileNotFoundError:
        pass
    except OSError:
        # The write's own error is the one raised; TensorBoard ignores a leftover
        # temporary name (no "tfevents" in it).
        log.warning("Cannot remove the temporary file %r", temp, exc_info=True)


def event_file_names(directory: str) -> list[str]:
    """Names of the event files in ``directory``, in the order TensorBoard reads them."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if "tfevents" in n and not n.startswith(TEMP_PREFIX))


def read_events(path: str, errors: list[str] | None = None) -> Iterator[event_pb2.Event]:
    """Every event of one file. A corrupt record ends the file: it is logged and
    appended to ``errors`` (if given), never raised."""
    try:
        with open(path, "rb") as f:
            for data in iter_records(f):
                event = event_pb2.Event()
                try:
                    event.ParseFromString(data)
                except DecodeError:
                    _report(errors, f"{path}: a record is not an Event", exc_info=True)
                    continue
                yield event
    except CorruptRecordError as e:
        _report(errors, f"{path}: {e}; the rest of the file is skipped")
    except OSError as e:
        _report(errors, f"{path}: cannot read ({e.strerror or e})")


def _report(errors: list[str] | None, message: str, *, exc_info: bool = False) -> None:
    log.warning("%s", message, exc_info=exc_info)
    if errors is not None:
        errors.append(message)


class EventReader:
    """The summary events of a directory's event files, in file-name order.

    Iterating yields only events that carry a summary (not the version record).
    Problems met while reading are in :attr:`errors` afterwards.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        self.errors: list[str] = []

    def __iter__(self) -> Iterator[event_pb2.Event]:
        for name in event_file_names(self.directory):
            for event in read_events(os.path.join(self.directory, name), self.errors):
                if event.HasField("summary"):
                    yield event


class EventFileWriter:
    """Appends events to one event file, as a training program's writer does.

    For runs (the demo, the examples) that log their own scalars; the monitor
    itself only writes whole files with :func:`write_event_file`.
    """

    def __init__(self, directory: str | os.PathLike[str], suffix: str = "") -> None:
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        stamp = int(time.time())
        self.path = os.path.join(directory, f"events.out.tfevents.{stamp:010d}{suffix}")
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self._file.write(_version_record())
        self._file.flush()

    def add_scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        summary = summary_pb2.Summary(value=[{"tag": tag, "simple_value": float(value)}])
        event = event_pb2.Event(
            wall_time=time.time() if wall_time is None else wall_time, step=step, summary=summary
        )
        self._file.write(encode_record(event.SerializeToString()))
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EventFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
