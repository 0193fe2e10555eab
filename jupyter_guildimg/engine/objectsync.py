"""A local mirror of the objects under a bucket prefix: what an object-store run
source (:mod:`.objectstore`) reads its runs from.

One :meth:`ObjectCache.sync` takes one complete listing of the prefix (fsspec's
``find``, paginated by the file system), compares every object's signature (ETag,
size, last-modified) with what the cache holds, fetches only new or changed objects
(a bounded number at once, each into a temporary file renamed into place, so a
half-fetched object is never seen), and removes the copies of objects the listing
no longer holds. A listing that fails raises and changes nothing. What the cache
holds is recorded in ``state.json`` beside the copies, so a restart fetches nothing
again. Nothing is ever written to the object store.

Only what the monitor reads is fetched: images, TensorBoard event files and a Guild
run's metadata (``.guild/opref``, ``attrs``, markers, ``manifest``); a checkpoint
or a data file is never downloaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .images import IMAGE_EXTENSIONS
from .layout import SourceError

__all__ = [
    "CacheFull",
    "ObjectCache",
    "Signature",
    "SyncResult",
    "object_filesystem",
    "wanted_key",
]

log = logging.getLogger(__name__)

_STATE = "state.json"
_TREE = "tree"
# Guild run metadata the sources read (see _guildmeta): fetched whatever the cache size.
_GUILD_FILES = frozenset({"opref", "LOCK", "LOCK.remote", "PENDING", "STAGED", "manifest"})
# Bytes fetched at most in one batch of concurrent requests (memory bound).
_BATCH_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Signature:
    """What says an object changed: its ETag (or hash), size and modification time."""

    etag: str
    size: int
    mtime: float


@dataclass
class CacheFull:
    """Objects of one run left unfetched because the cache reached its size limit."""

    objects: int = 0
    bytes: int = 0


@dataclass
class SyncResult:
    """What one :meth:`ObjectCache.sync` did: objects fetched (``fetched``, their
    ``fetched_bytes``), copies removed, and the run-relative keys it could not fetch
    (key -> why), ``full`` (run dir -> :class:`CacheFull`)."""

    fetched: int = 0
    fetched_bytes: int = 0
    removed: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    full: dict[str, CacheFull] = field(default_factory=dict)


def wanted_key(key: str, guild: bool) -> bool:
    """Whether the object at ``key`` (relative to the source's prefix, ``/``-separated)
    is fetched: images and event files anywhere (a Guild run's ``.guild`` holds only
    event files and metadata for the monitor), and a Guild run's metadata."""
    parts = key.split("/")
    if any(p in ("", ".", "..") or "\0" in p for p in parts):
        return False  # never a path outside the cache (nor an empty component)
    name = parts[-1]
    if guild:
        if len(parts) < 3 or parts[0] != "runs":
            return False
        if len(parts) >= 4 and parts[2] == ".guild":
            if "tfevents" in name:
                return True
            return (len(parts) == 4 and name in _GUILD_FILES) or (
                len(parts) == 5 and parts[3] == "attrs"
            )
    return "tfevents" in name or os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _local_key(key: str) -> str:
    # A remote run's LOCK holds a pid of another machine: Guild's own marker for a
    # run running elsewhere is LOCK.remote, read as running without a pid check.
    head, _, name = key.rpartition("/")
    return f"{head}/LOCK.remote" if name == "LOCK" and head.endswith("/.guild") else key


def _is_metadata(key: str) -> bool:
    return "/.guild/" in key and "tfevents" not in key


def signature(info: Mapping[str, Any]) -> Signature:
    """The :class:`Signature` of an fsspec listing entry (S3, GCS, Azure spellings)."""
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or ""
    when = (
        info.get("LastModified")
        or info.get("last_modified")
        or info.get("updated")
        or info.get("mtime")
        or 0
    )
    if isinstance(when, datetime):
        mtime = when.timestamp()
    elif isinstance(when, str):
        try:
            mtime = datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
        except ValueError:
            mtime = 0.0
    else:
        mtime = float(when)
    return Signature(str(etag), int(info.get("size") or 0), mtime)


def _mtime_ns(sig: Signature) -> int:
    # Object times have 1 s resolution: an image rewritten within the same second
    # must still look changed to the monitor, so the ETag picks the nanoseconds.
    ns = int(hashlib.md5(sig.etag.encode(), usedforsecurity=False).hexdigest()[:8], 16)
    return int(sig.mtime) * 1_000_000_000 + ns % 1_000_000_000


class ObjectCache:
    """The copies of the wanted objects under ``base`` (a path as the fsspec file
    system ``fs`` names it) in ``root``: ``root/tree/<key>``. ``max_bytes`` bounds
    the bytes held (metadata is always fetched); ``max_object_bytes`` refuses larger
    images unfetched; ``concurrency`` bounds requests at once. ``on_request(kind)`` is
    called for each request made (``"list"`` or ``"get"``)."""

    def __init__(
        self,
        fs: Any,
        base: str,
        root: str,
        *,
        max_bytes: int | None = None,
        max_object_bytes: int | None = None,
        concurrency: int = 16,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self.fs = fs
        self.base = base.rstrip("/")
        self.root = root
        self.tree = os.path.join(root, _TREE)
        self.max_bytes = max_bytes or None
        self.max_object_bytes = max_object_bytes or None
        self.concurrency = max(1, concurrency)
        self._on_request = on_request or (lambda kind: None)
        self.kind: str | None = None  # "guild" or "dir", once known
        self.known: dict[str, Signature] = {}
        self._load()

    # -- state --------------------------------------------------------------

    def _load(self) -> None:
        try:
            with open(os.path.join(self.root, _STATE), encoding="utf-8") as f:
                state = json.load(f)
            objects = state["objects"]
            kind = state.get("kind")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError):
            log.warning(
                "Object cache %r: state unreadable; fetching again", self.root, exc_info=True
            )
            return
        self.kind = kind if kind in ("guild", "dir") else None
        for key, (etag, size, mtime) in objects.items():
            try:  # a copy missing or not whole is fetched again
                if os.stat(self.local_path(key)).st_size == size:
                    self.known[key] = Signature(etag, size, mtime)
            except OSError:
                continue

    def _save(self) -> None:
        state = {
            "version": 1,
            "kind": self.kind,
            "objects": {k: [s.etag, s.size, s.mtime] for k, s in self.known.items()},
        }
        fd, tmp = tempfile.mkstemp(prefix=".state.", dir=self.root)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state, f)
        os.replace(tmp, os.path.join(self.root, _STATE))

    def local_path(self, key: str) -> str:
        return os.path.join(self.tree, *_local_key(key).split("/"))

    @property
    def cached_bytes(self) -> int:
        return sum(sig.size for sig in self.known.values())

    # -- one sync -------------------------------------------------------------

    def list_objects(self) -> dict[str, Signature]:
        """Every object under the base, by key relative to it; raises on any failure
        (a partial listing is never used)."""
        self._on_request("list")
        found = self.fs.find(self.base, detail=True, withdirs=False)
        prefix = self.base + "/"
        listing: dict[str, Signature] = {}
        for path, info in found.items():
            path = path.lstrip("/")
            if path.startswith(prefix.lstrip("/")) and not path.endswith("/"):
                listing[path[len(prefix.lstrip("/")) :]] = signature(info)
        return listing

    def sync(self, listing: Mapping[str, Signature], run_of: Callable[[str], str]) -> SyncResult:
        """Bring the copies in line with ``listing`` (from :meth:`list_objects`). ``run_of(key)``
        names the run dir a key belongs to (for what cannot be fetched)."""
        os.makedirs(self.tree, exist_ok=True)
        guild = self.kind == "guild"
        remote = {k: s for k, s in listing.items() if wanted_key(k, guild)}
        result = SyncResult()
        touched: set[str] = set()
        for key in [k for k in self.known if k not in remote]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.local_path(key))
            del self.known[key]
            touched.add(os.path.dirname(self.local_path(key)))
            result.removed += 1
        todo = [k for k, s in remote.items() if self.known.get(k) != s]
        # Metadata first (always fetched), then the newest objects.
        todo.sort(key=lambda k: (not _is_metadata(k), -remote[k].mtime))
        budget = None if self.max_bytes is None else self.max_bytes - self.cached_bytes
        fetch: list[str] = []
        for key in todo:
            sig = remote[key]
            old = self.known.get(key)
            grow = sig.size - (old.size if old else 0)
            if self.max_object_bytes and sig.size > self.max_object_bytes and not _is_metadata(key):
                result.failed[key] = f"larger than {self.max_object_bytes} bytes: not fetched"
                continue
            if budget is not None and not _is_metadata(key) and grow > budget:
                full = result.full.setdefault(run_of(key), CacheFull())
                full.objects += 1
                full.bytes += sig.size
                continue
            if budget is not None:
                budget -= grow
            fetch.append(key)
        for batch in self._batches(fetch, remote):
            self._fetch(batch, remote, result, touched)
        if result.fetched or result.removed:
            self._settle_dirs(touched)
            self._save()
        return result

    def _batches(self, keys: list[str], remote: Mapping[str, Signature]) -> Iterable[list[str]]:
        batch: list[str] = []
        size = 0
        for key in keys:
            if batch and (
                len(batch) >= 4 * self.concurrency or size + remote[key].size > _BATCH_BYTES
            ):
                yield batch
                batch, size = [], 0
            batch.append(key)
            size += remote[key].size
        if batch:
            yield batch

    def _fetch(
        self,
        keys: list[str],
        remote: Mapping[str, Signature],
        result: SyncResult,
        touched: set[str],
    ) -> None:
        """Fetch ``keys`` concurrently (``fs.cat_ranges``: the file system's own
        bounded concurrency, no globbing of names) and put each in place; an event
        file that only grew gets just its new bytes, appended (TensorBoard goes on
        reading the same file)."""
        starts = []
        for key in keys:
            old = self.known.get(key)
            grew = old is not None and "tfevents" in key and remote[key].size > old.size
            starts.append(old.size if grew and old is not None else 0)
            self._on_request("get")
        paths = [f"{self.base}/{key}" for key in keys]
        got = self.fs.cat_ranges(
            paths, starts, [None] * len(keys), on_error="return", batch_size=self.concurrency
        )
        for key, start, data in zip(keys, starts, got, strict=True):
            if not isinstance(data, bytes):
                if isinstance(data, FileNotFoundError):
                    continue  # deleted since the listing: the next listing says so
                result.failed[key] = _reason(data)
                continue
            try:
                self._put(key, (start, data) if start else data, remote[key])
            except OSError as e:
                log.warning("Object cache: cannot write %r", key, exc_info=True)
                result.failed[key] = f"cannot write the local copy: {e.strerror or e}"
                continue
            self.known[key] = remote[key]
            touched.add(os.path.dirname(self.local_path(key)))
            result.fetched += 1
            result.fetched_bytes += len(data)

    def _put(self, key: str, got: bytes | tuple[int, bytes], sig: Signature) -> None:
        path = self.local_path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(got, tuple):
            start, tail = got
            with open(path, "r+b") as f:
                f.truncate(start)
                f.seek(start)
                f.write(tail)
        else:
            fd, tmp = tempfile.mkstemp(prefix=".fetch.", dir=os.path.dirname(path))
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(got)
                if not _is_metadata(key):  # metadata keeps local times: see _settle_dirs
                    ns = _mtime_ns(sig)
                    os.utime(tmp, ns=(ns, ns))
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        if isinstance(got, tuple) and not _is_metadata(key):
            ns = _mtime_ns(sig)
            os.utime(path, ns=(ns, ns))

    def _settle_dirs(self, touched: set[str]) -> None:
        """Remove the directories removals emptied, and give the directories of a
        plain runs folder the time of their newest object, so that its runs' start,
        stop and status follow the objects' times, not the time they were fetched. A
        Guild home's directories keep local times: the Guild source re-reads a run
        when its ``.guild`` directories move."""
        newest: dict[str, int] = {}
        if self.kind != "guild":
            for key, sig in self.known.items():
                d = os.path.dirname(self.local_path(key))
                newest[d] = max(newest.get(d, 0), _mtime_ns(sig))
        for d in sorted(touched, key=len, reverse=True):
            while d.startswith(self.tree + os.sep):
                with contextlib.suppress(OSError):
                    if not os.listdir(d):
                        os.rmdir(d)
                    elif d in newest:
                        os.utime(d, ns=(newest[d], newest[d]))
                d = os.path.dirname(d)


def _reason(error: BaseException | None) -> str:
    if error is None:
        return "not fetched"
    return f"fetch failed ({type(error).__name__}), retried at the next listing"


def object_filesystem(protocol: str, endpoint_url: str) -> Any:
    """A fresh fsspec file system for ``protocol`` (never a shared, cached instance,
    never a listings cache: every listing asks the store). Raises
    :class:`~.layout.SourceError` naming what to install when its package is missing."""
    try:
        import fsspec  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        fsspec = None
    options: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
    if protocol in ("s3", "s3a"):
        options["config_kwargs"] = {
            "connect_timeout": 5,
            "read_timeout": 30,
            "retries": {"max_attempts": 3, "mode": "standard"},
        }
        if endpoint_url:
            options["client_kwargs"] = {"endpoint_url": endpoint_url}
    try:
        if fsspec is None:
            raise ImportError("fsspec is not installed")
        return fsspec.filesystem(protocol, **options)
    except ImportError:
        extra = "s3" if protocol in ("s3", "s3a") else None
        how = (
            f'pip install "jupyter_guildimg[{extra}]"'
            if extra
            else f"install fsspec's package for {protocol}://"
        )
        raise SourceError(
            f"{protocol}:// sources need packages that are not installed: {how}"
        ) from None
