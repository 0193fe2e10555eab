"""Run sources on object storage: ``guild:s3://bucket/prefix`` (a Guild home, as
Guild's s3 remote writes it) and ``dir:s3://bucket/prefix`` (a folder of runs).

An :class:`ObjectStoreSource` keeps a local mirror of the prefix (:mod:`.objectsync`)
in a cache directory, outside every run source and log dir, and lists its runs
through a local :class:`~.runs.GuildHome` or :class:`~.runsdir.RunsDir` over that
mirror: names, statuses, flags and image rules are the local sources' own. Run dirs
are paths in the mirror, so the monitor, TensorBoard and the API read local files.

Object stores send no events: the source is polled. ``list_runs()`` lists the
bucket when its own interval has passed (``poll_interval``, longer when a listing
is costly) and otherwise lists the mirror as it is. A listing that fails leaves
the mirror as it was, lists its runs unchanged and names the source as unreadable
(the monitor keeps its runs and reports why); it is retried with back-off.
Credentials come from fsspec/botocore's standard places and never appear in a
message: exception texts are reduced to their first line, with known secrets
removed. Any fsspec protocol goes through the same code; only ``s3://`` is tested.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .layout import SourceError
from .objectsync import ObjectCache, Signature, SyncResult, object_filesystem
from .runrecord import Run, RunList, RunSource, Unreadable
from .runsdir import RunsDir

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_OBJECT_POLL_INTERVAL",
    "OBJECT_PROTOCOLS",
    "ObjectStoreOptions",
    "ObjectStoreSource",
    "default_cache_dir",
    "is_object_url",
    "normalize_url",
]

log = logging.getLogger(__name__)

#: URL schemes read through fsspec (only ``s3`` is tested here).
OBJECT_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
DEFAULT_OBJECT_POLL_INTERVAL = 2.0
DEFAULT_CACHE_BYTES = 10 * 2**30
#: The share of the time listings may take: a listing of 0.5 s polls every 2.5 s.
_LISTING_SHARE = 0.2
_MAX_BACKOFF = 60.0
#: Seconds without a list_runs() after which the background lister stops listing.
_IDLE = 30.0
_SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)


def is_object_url(text: str) -> bool:
    """Whether ``text`` names a place on object storage (``s3://…`` and the other
    :data:`OBJECT_PROTOCOLS`)."""
    match = _URL.match(text)
    return match is not None and match.group(1).lower() in OBJECT_PROTOCOLS


def normalize_url(text: str) -> str:
    """``text`` as a source path: scheme in lower case, no trailing ``/``. Raises
    :class:`SourceError` for a URL that carries credentials (``user:secret@``)."""
    scheme, _, rest = text.partition("://")
    bucket = rest.split("/", 1)[0]
    if "@" in bucket or not bucket:
        raise SourceError(
            f"{scheme}:// source needs a bucket, and no credentials in the URL"
            " (use the standard AWS places: environment, config files, profiles)"
        )
    return f"{scheme.lower()}://{rest.rstrip('/')}"


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/jupyter_guildimg/objects``, else ``~/.cache/…``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jupyter_guildimg", "objects")


@dataclass(frozen=True)
class ObjectStoreOptions:
    """Settings of object-store sources: ``endpoint_url`` (S3-compatible stores;
    ``""``: ``$AWS_ENDPOINT_URL``, else AWS), ``cache_dir`` (``""``:
    :func:`default_cache_dir`), ``cache_bytes`` (the mirror's bound, 0: none),
    ``poll_interval`` (seconds between listings at least), ``max_object_bytes``
    (larger images are not fetched, 0: no limit), ``concurrency`` (requests at once),
    ``background`` (list in a thread of the source's own, so that a monitor pass
    never waits for a listing; else passes list when due)."""

    endpoint_url: str = ""
    cache_dir: str = ""
    cache_bytes: int = DEFAULT_CACHE_BYTES
    poll_interval: float = DEFAULT_OBJECT_POLL_INTERVAL
    max_object_bytes: int = 64 * 2**20
    concurrency: int = 16
    background: bool = True


class ObjectStoreSource(RunSource):
    """The runs under an object-store URL (see the module's docstring). ``kind`` is
    ``"guild"``, ``"dir"`` or ``None`` (guessed at the first listing: a Guild home
    if ``runs/<id>/.guild/opref`` is there). :attr:`path` is the URL; runs' dirs
    are in the mirror, their ``source`` is the URL. Raises :class:`SourceError`
    when the protocol's fsspec package is missing (naming the extra to install)."""

    def __init__(
        self,
        url: str,
        kind: str | None,
        options: ObjectStoreOptions | None,
        *,
        guild_home: Callable[[str], RunSource],
    ) -> None:
        self.path = normalize_url(url)
        self._guild_home = guild_home  # a local Guild home over a tree (runs.GuildHome)
        self.options = options or ObjectStoreOptions()
        self.protocol = self.path.split("://", 1)[0]
        self.endpoint_url = self.options.endpoint_url or os.environ.get("AWS_ENDPOINT_URL", "")
        self.fs = object_filesystem(self.protocol, self.endpoint_url)
        key = hashlib.sha256(f"{self.endpoint_url}\n{self.path}".encode()).hexdigest()[:20]
        self.cache_root = os.path.join(
            os.path.abspath(self.options.cache_dir or default_cache_dir()), key
        )
        os.makedirs(self.cache_root, mode=0o700, exist_ok=True)
        self.requests = {"list": 0, "get": 0}
        self._lock = threading.Lock()
        self.cache = ObjectCache(
            self.fs,
            self.path.split("://", 1)[1],
            self.cache_root,
            max_bytes=self.options.cache_bytes,
            max_object_bytes=self.options.max_object_bytes,
            concurrency=self.options.concurrency,
            on_request=self._count,
        )
        if kind is not None:
            self.cache.kind = kind
        self._local: RunSource | None = None
        self.last_listing: float | None = None  # when the last listing succeeded
        self.listing_cost = 0.0  # seconds the last successful listing took
        self.error = ""  # why the last listing failed ("" when it did not)
        self.failures = 0  # listings failed in a row
        self._next_poll = 0.0  # monotonic
        self._forced = False  # list_soon() was called
        # A listing the background lister made (when it started, the objects), and
        # when the listing last applied started: an older one is never applied.
        self._ready: tuple[float, dict[str, Signature]] | None = None
        self._applied = -1.0
        self._used = time.monotonic()  # when list_runs was last called
        self._lister: threading.Thread | None = None
        self._wake = threading.Event()
        self._problems: list[Unreadable] = []  # what the last sync could not fetch

    def __repr__(self) -> str:
        return f"ObjectStoreSource({self.path!r})"

    def _count(self, kind: str) -> None:
        self.requests[kind] += 1

    @property
    def kind(self) -> str | None:
        return self.cache.kind

    @property
    def exists(self) -> bool:
        """Whether the last listing succeeded (the prefix answered)."""
        return self.last_listing is not None and not self.error

    @property
    def watch_root(self) -> str:
        """The URL: no file-system watcher can watch it, so the source is polled."""
        return self.path

    @property
    def poll_interval(self) -> float:
        """Seconds between listings now: the setting, longer when a listing is
        costly (at most :data:`_LISTING_SHARE` of the time), backing off after
        failures (doubling, up to a minute)."""
        base = max(self.options.poll_interval, self.listing_cost / _LISTING_SHARE)
        if self.failures:
            return min(_MAX_BACKOFF, base * 2.0**self.failures)
        return base

    def list_soon(self) -> None:
        """Make the next :meth:`list_runs` list the bucket, whatever the interval
        (a user's refresh; back-off included)."""
        self._forced = True

    def local(self) -> RunSource:
        """The local source over the mirror (once the kind is known)."""
        if self._local is None:
            tree = self.cache.tree
            self._local = RunsDir(tree) if self.cache.kind == "dir" else self._guild_home(tree)
        return self._local

    # -- listing ------------------------------------------------------------

    def list_runs(self) -> RunList:
        """The runs in the mirror, brought up to date with the newest listing: made
        now when none was made yet (or :meth:`list_soon` asked), else the one the
        background lister made since (``options.background``; without it, made now
        when due). A failed listing lists the mirror's runs as they were, with this
        source named unreadable (why, and when it is retried, in :meth:`status`)."""
        with self._lock:
            self._used = time.monotonic()
            ready, self._ready = self._ready, None
            due = time.monotonic() >= self._next_poll and not self.options.background
            if self._forced or (self.last_listing is None and not self.error) or due:
                self._forced = False
                ready = self._list_now()
            if ready is not None and ready[0] > self._applied:
                self._apply(ready[1])
                self._applied = ready[0]
            if self.options.background:
                self._start_lister()
            if self.cache.kind is None:  # never listed: nothing to show yet
                return RunList(unreadable=[Unreadable(self.path, self.error)] if self.error else [])
            listing = self.local().list_runs()
            runs = RunList(
                (self._own(run) for run in listing),
                [*listing.unreadable, *self._problems],
            )
            if self.error:
                runs.unreadable.append(Unreadable(self.path, self.error))
            return runs

    def poll(self) -> SyncResult | None:
        """List the bucket now and bring the mirror up to date; the sync's result,
        ``None`` when the listing failed (:attr:`error` says why)."""
        with self._lock:
            ready = self._list_now()
            if ready is None:
                return None
            self._applied = ready[0]
            return self._apply(ready[1])

    def _list_now(self) -> tuple[float, dict[str, Signature]] | None:
        """One listing: ``(when it started, the objects)``, ``None`` if it failed
        (counted, reported, backed off). Any thread; writes nothing to the mirror."""
        started = time.monotonic()
        try:
            listing = self.cache.list_objects()
        except Exception as e:  # any failure: the mirror stays as it was
            self.failures += 1
            self.error = f"listing {self.path} failed: {self.scrub(e)}"
            # Said once in a row; botocore's messages name no credential.
            log.log(
                logging.WARNING if self.failures == 1 else logging.DEBUG,
                "%s; its runs are kept, retrying in %.0f s",
                self.error,
                self.poll_interval,
                exc_info=True,
            )
            self._next_poll = time.monotonic() + self.poll_interval
            return None
        if self.error:
            log.info("Listing %s works again", self.path)
        self.error = ""
        self.failures = 0
        self.last_listing = time.time()
        # What recurs at every poll is the listing, not the first fetches.
        self.listing_cost = time.monotonic() - started
        self._next_poll = time.monotonic() + self.poll_interval
        return started, listing

    def _apply(self, listing: dict[str, Signature]) -> SyncResult:
        """Bring the mirror in line with ``listing`` (under the lock: the monitor's
        thread, so the mirror never changes while a pass reads it)."""
        if self.cache.kind is None:
            self.cache.kind = "guild" if _holds_guild_runs(listing) else "dir"
        if self.cache.kind == "guild" and self._local is None:
            os.makedirs(os.path.join(self.cache.tree, "runs"), exist_ok=True)
        result = self.cache.sync(listing, self._run_of)
        # One report per run, not per object: a store failing mid-sync fails thousands.
        failed: dict[str, list[str]] = {}
        for key, message in sorted(result.failed.items()):
            failed.setdefault(self._run_of(key), []).append(message)
        self._problems = [
            Unreadable(run_dir, f"{len(messages)} objects not fetched: {messages[0]}")
            for run_dir, messages in failed.items()
        ]
        limit = self.options.cache_bytes
        self._problems += [
            Unreadable(
                run_dir,
                f"object cache full ({limit} bytes, cache_bytes): {full.objects} objects"
                f" ({full.bytes} bytes) of this run not fetched",
            )
            for run_dir, full in result.full.items()
        ]
        return result

    def _start_lister(self) -> None:
        if self._lister is None or not self._lister.is_alive():
            self._lister = threading.Thread(
                target=_lister, args=(weakref.ref(self),), name="guildimg-objects", daemon=True
            )
            self._lister.start()

    def close(self) -> None:
        """Stop the background lister (a later :meth:`list_runs` starts it again)."""
        self._used = -_IDLE
        self._wake.set()

    def _run_of(self, key: str) -> str:
        parts = key.split("/")
        depth = 2 if self.cache.kind == "guild" else 1
        return os.path.join(self.cache.tree, *parts[: min(depth, len(parts) - 1)])

    def _own(self, run: Run) -> Run:
        return dataclasses.replace(run, source=self.path)

    def read_run(self, run_dir: str) -> Run | None:
        """The run at ``run_dir`` (in the mirror), read from the mirror."""
        if self.cache.kind is None:
            return None
        run = self.local().read_run(run_dir)
        return None if run is None else self._own(run)

    def locate(self, path: str) -> str | None:
        return None if self.cache.kind is None else self.local().locate(path)

    def scrub(self, error: BaseException) -> str:
        """``error`` as one line for a message: its type and first line, with every
        credential this process knows of replaced."""
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        for name in _SECRET_VARS:
            value = os.environ.get(name)
            if value and len(value) >= 4:
                text = text.replace(value, "***")
        for value in _fs_secrets(self.fs):
            text = text.replace(value, "***")
        return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__

    def status(self) -> dict[str, Any]:
        """JSON-able state: URL, kind, mirror, last listing, error, back-off, counts."""
        due = max(0.0, self._next_poll - time.monotonic())
        return {
            "path": self.path,
            "kind": self.cache.kind,
            "cache": self.cache_root,
            "objects": len(self.cache.known),
            "cached_bytes": self.cache.cached_bytes,
            "cache_bytes": self.options.cache_bytes,
            "last_listing": None if self.last_listing is None else round(self.last_listing, 3),
            "listing_seconds": round(self.listing_cost, 4),
            "poll_interval": round(self.poll_interval, 3),
            "next_listing_in": round(due, 3),
            "error": self.error or None,
            "failures": self.failures,
            "requests": dict(self.requests),
            "not_fetched": [{"path": u.path, "message": u.message} for u in self._problems][:20],
        }


def _lister(ref: weakref.ref[ObjectStoreSource]) -> None:
    """The background lister: lists the source's bucket whenever due and leaves the
    listing for its next :meth:`~ObjectStoreSource.list_runs` (so a monitor pass pays
    for the changes only, never for the listing). Ends when the source is gone or
    unused for :data:`_IDLE` seconds (nobody reads it: no request is made)."""
    while True:
        source = ref()
        if source is None or time.monotonic() - source._used > _IDLE:
            return
        wait = source._next_poll - time.monotonic()
        if wait <= 0:
            ready = source._list_now()
            if ready is not None:
                source._ready = ready
        wake = source._wake
        del source  # not held while waiting: a dropped source ends the thread
        wake.wait(min(max(wait, 0.05), 1.0))
        wake.clear()


def _holds_guild_runs(listing: dict[str, Any]) -> bool:
    return any(
        len(parts) == 4 and parts[0] == "runs" and parts[2:] == [".guild", "opref"]
        for parts in (key.split("/") for key in listing)
    )


def _fs_secrets(fs: Any) -> list[str]:
    options = getattr(fs, "storage_options", {}) or {}
    return [
        str(options[name])
        for name in ("key", "secret", "token", "password", "account_key")
        if isinstance(options.get(name), str) and len(options[name]) >= 4
    ]
