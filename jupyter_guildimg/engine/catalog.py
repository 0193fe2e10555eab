"""What the REST API shows: runs, their captured images and image bytes.

Everything is looked up in the monitor's last snapshot (:attr:`RunsMonitor.views`)
by keys the monitor made: a run key and an image path the monitor summarized.
No file-system path is ever built from a request; image bytes are read from the
monitor's own summary files, which is also how past revisions are served after
the run directory has moved on.

Thumbnails are made and cached by :mod:`.thumbnails`, bounded in memory.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from .. import rest
from .images import content_type
from .layout import path_digest, summary_file_name
from .monitor import RunsMonitor, RunView
from .runs import Run
from .summaries import Revision
from .tfevent import read_events
from .thumbnails import (
    DECODE_ERRORS,
    ThumbnailCache,
    ThumbnailError,
    make_thumbnail,
    thumb_width,
)

__all__ = [
    "AmbiguousRunError",
    "Catalog",
    "ImageBytes",
    "NotFoundError",
    "identity_fields",
    "run_key",
    "run_matches",
]

log = logging.getLogger(__name__)

_MAX_NAMED = 10  # candidates an ambiguous run key's error names


class NotFoundError(LookupError):
    """No such run, image or revision; the message says which."""


class AmbiguousRunError(NotFoundError):
    """A run key that names several runs; the message lists them."""


@dataclass(frozen=True)
class ImageBytes:
    data: bytes
    content_type: str
    revision: int  # the counter of the revision served


def run_key(run: Run) -> str:
    """A run's id in URLs: the Guild id, or a digest of a plain run's directory
    (plain run ids are relative paths, with slashes)."""
    if run.kind == "guild":
        return run.id
    return "d" + hashlib.sha1(run.dir.encode("utf-8")).hexdigest()[:15]


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run_matches(run: rest.Run, q: str) -> bool:
    """Whether ``GET runs?q=`` keeps ``run``: every word of ``q`` (split at white
    space) occurs, ignoring case, in at least one of the run's
    :data:`~jupyter_guildimg.rest.FILTER_FIELDS`."""
    fields: Mapping[str, object] = run
    texts = [str(fields[name] or "").lower() for name in rest.FILTER_FIELDS]
    return all(any(word in text for text in texts) for word in q.lower().split())


def identity_fields(view: RunView) -> rest.Run:
    """The first fields ``GET runs`` lists for a run: its key (``id``), ids, name,
    operation, label and status, every one :func:`run_matches` reads."""
    run = view.run
    fields = {
        "id": run_key(run),
        "run_id": run.id,
        "short_id": run.short_id,
        "name": view.name,
        "operation": run.operation,
        "label": run.label,
        "status": run.status,
    }
    return cast(rest.Run, fields)


# How a run's encoded part ends (see Catalog.runs_body): in_tensorboard is its last key.
_SHOWN = b', "in_tensorboard": true}'
_NOT_SHOWN = b', "in_tensorboard": false}'


@dataclass(frozen=True)
class _Listed:
    """One view's run as ``GET runs`` lists it: the dict, and its JSON encoded up to
    (not including) ``in_tensorboard``, which each request adds."""

    view: RunView
    run: rest.Run
    encoded: bytes


def _listed_entry(view: RunView, run: rest.Run) -> _Listed:
    fields = {name: value for name, value in run.items() if name != "in_tensorboard"}
    return _Listed(view, run, json.dumps(fields).encode()[:-1])


class Catalog:
    """A read-only view of ``monitor`` for the API. Thread-safe: it reads the
    snapshot the monitor replaces after each pass, and caches thumbnails (at most
    ``thumbnail_cache`` of them and ``thumbnail_cache_bytes`` of their bytes).

    A thumbnail decodes at most ``thumbnail_max_decode`` bytes of pixels (after
    JPEG's reduction on load), and at most ``concurrent_decodes`` thumbnails are
    decoded at once, in threads of the catalog's own; further requests wait their
    turn. Those threads start on first use; :meth:`close` ends them.

    ``shown`` answers the keys of the runs TensorBoard shows (each run's
    ``in_tensorboard``); it is called once per listing, so it must be cheap."""

    def __init__(
        self,
        monitor: RunsMonitor,
        thumbnail_cache: int = 512,
        thumbnail_cache_bytes: int = 64 * 2**20,
        thumbnail_max_decode: int = 128 * 2**20,
        concurrent_decodes: int = 2,
        *,
        shown: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        if concurrent_decodes < 1:
            raise ValueError(f"concurrent_decodes must be >= 1, got {concurrent_decodes}")
        self.monitor = monitor
        self.shown = shown
        self._thumbs: ThumbnailCache[ImageBytes] = ThumbnailCache(
            thumbnail_cache, thumbnail_cache_bytes
        )
        self.thumbnail_max_decode = thumbnail_max_decode
        self._decoder = concurrent.futures.ThreadPoolExecutor(
            concurrent_decodes, thread_name_prefix="guildimg-thumbnail"
        )
        # The monitor's views (replaced whole by each pass) and their runs by key: one
        # dict lookup per request instead of a scan of every run.
        # Each run key's place in the views it was made for; see find().
        self._places: tuple[tuple[RunView, ...], dict[str, int]] = ((), {})
        self._listed_cache: tuple[tuple[RunView, ...], dict[int, _Listed]] = ((), {})

    def close(self) -> None:
        """End the decoding threads: a decode in progress finishes, requests still
        waiting for one raise ``concurrent.futures.CancelledError``, and thumbnails
        not in the cache then raise RuntimeError. The rest of the catalog keeps working."""
        self._decoder.shutdown(wait=False, cancel_futures=True)

    # -- runs -------------------------------------------------------------

    def runs(self, image: str | None = None, q: str | None = None) -> list[rest.Run]:
        """Every run, newest first; with ``image``, only the runs that captured an
        image at that path (what the JupyterLab viewer offers to compare); with ``q``,
        only those :func:`run_matches` keeps."""
        every = views = self.monitor.views  # read once: a pass may replace it meanwhile
        if image is not None:
            views = tuple(view for view in views if image in view.images)
        shown = self.shown()
        runs: list[rest.Run] = []
        for entry in self._matching(views, self._listed(every), q):
            run = entry.run.copy()
            run["in_tensorboard"] = run["id"] in shown
            runs.append(run)
        return runs

    def runs_body(self, image: str | None = None, q: str | None = None) -> bytes:
        """``GET runs``'s JSON body, ``{"runs": runs(image, q)}``, encoded: each run's
        part is encoded once for its view, a request only joins them (at 100,000 runs
        ``json.dumps`` of the whole list took ~0.5 s, on the server's event loop)."""
        every = views = self.monitor.views
        if image is not None:
            views = tuple(view for view in views if image in view.images)
        shown = self.shown()
        parts = [b'{"runs": [']
        for n, entry in enumerate(self._matching(views, self._listed(every), q)):
            parts += (b", " if n else b"", entry.encoded)
            parts.append(_SHOWN if entry.run["id"] in shown else _NOT_SHOWN)
        parts.append(b"]}")
        return b"".join(parts)

    @staticmethod
    def _matching(
        views: tuple[RunView, ...], listed: dict[int, _Listed], q: str | None
    ) -> Iterator[_Listed]:
        entries = (listed[id(view)] for view in views)
        if q and q.strip():
            return (entry for entry in entries if run_matches(entry.run, q))
        return entries

    def _listed(self, views: tuple[RunView, ...]) -> dict[int, _Listed]:
        """Each view's run as ``GET runs`` lists it (``in_tensorboard`` left to the
        caller), by the view's identity. Views are immutable and a pass replaces only
        those of the runs it changed, so the others' answers are made once, not for
        every request (at 10,000 runs, the list took ~70 ms to make)."""
        made_for, listed = self._listed_cache
        if made_for is not views:
            listed = {
                id(view): cached
                if (cached := listed.get(id(view))) is not None and cached.view is view
                else _listed_entry(view, self._run_json(view, ()))
                for view in views
            }
            self._listed_cache = (views, listed)
        return listed

    def _run_json(self, view: RunView, shown: Collection[str] | None = None) -> rest.Run:
        run = view.run
        fields = identity_fields(view)
        return {
            **fields,
            "started": _seconds(run.started),
            "stopped": _seconds(run.stopped),
            "kind": "guild" if run.kind == "guild" else "dir",
            "source": run.source,
            "image_count": len(view.images),
            "in_tensorboard": fields["id"] in (self.shown() if shown is None else shown),
        }

    def run(self, key: str) -> rest.Run:
        """The run :meth:`find` finds, as ``GET runs`` lists it."""
        return self._run_json(self.find(key))

    def find(self, key: str) -> RunView:
        """The run ``key`` names: the run whose key (``id`` in ``GET runs``) is
        ``key``; else the run whose id (``run_id``: a Guild id, or a plain run's
        path) is ``key``; else the one run whose id starts with ``key``, from
        :data:`~jupyter_guildimg.rest.MIN_PREFIX` characters on. This is the only
        run lookup: the API's routes, the panel and ``%guildimg --run`` all use it.

        Raises NotFoundError when no run matches, :class:`AmbiguousRunError`
        (naming the candidates) when several do."""
        views = self.monitor.views
        if (found := self._at_place(views, key)) is not None:
            return found
        for candidates in (
            [view for view in views if view.run.id == key],
            [view for view in views if len(key) >= rest.MIN_PREFIX and view.run.id.startswith(key)],
        ):
            if len(candidates) == 1:
                return candidates[0]
            if candidates:
                names = ", ".join(repr(view.run.id) for view in candidates[:_MAX_NAMED])
                more = len(candidates) - _MAX_NAMED
                if more > 0:
                    names += f" and {more} more"
                raise AmbiguousRunError(f"several runs match {key!r}: {names}")
        raise NotFoundError(f"no run {key!r}")

    def _at_place(self, views: tuple[RunView, ...], key: str) -> RunView | None:
        """The view whose run key is ``key``, by the places of the last views indexed:
        a targeted pass replaces views in place, so a run's place holds after most
        passes and is checked rather than every place made again (at 100,000 runs,
        remaking them after each change cost the server's event loop tens of ms)."""
        indexed, places = self._places
        place = places.get(key)
        if place is not None and place < len(views) and run_key(views[place].run) == key:
            return views[place]
        if indexed is views:
            return None
        places = {run_key(view.run): i for i, view in enumerate(views)}
        self._places = (views, places)
        place = places.get(key)
        return None if place is None else views[place]

    # -- images -----------------------------------------------------------

    def images(self, key: str) -> rest.RunImages:
        """The run and its images by path: each with ``revisions`` (newest first) and
        ``dropped``, how many of its oldest revisions the monitor removed under its
        ``max_revisions_per_image``."""
        view = self.find(key)
        return {
            "run": self._run_json(view),
            "images": [
                {
                    "path": path,
                    "dropped": view.dropped.get(path, 0),
                    "revisions": [self._revision_json(view, path, r) for r in reversed(revisions)],
                }
                for path, revisions in sorted(view.images.items())
            ],
        }

    def _revision_json(self, view: RunView, path: str, revision: Revision) -> rest.Revision:
        width, height, size = revision.width, revision.height, revision.size
        if width is None or height is None or size is None:
            # Found on disk after a restart: read its header once.
            summary = self._read_summary(view, path, revision.counter)
            width, height, size = summary.width, summary.height, len(summary.encoded_image_string)
        return {
            "revision": revision.counter,
            "time": round(revision.mtime_ns / 1e9, 3),
            "width": width,
            "height": height,
            "size": size,
        }

    def image(self, key: str, path: str, revision: int | None = None) -> ImageBytes:
        """The bytes of one revision (the newest when ``revision`` is None)."""
        view = self.find(key)
        counter = self._counter(view, path, revision)
        data = self._read_summary(view, path, counter).encoded_image_string
        return ImageBytes(data, content_type(data), counter)

    def thumbnail(self, key: str, path: str, width: int, revision: int | None = None) -> ImageBytes:
        """The image's first frame scaled to fit a square of ``thumb_width(width)``
        pixels (never enlarged), as JPEG for a JPEG image, else PNG; cached.

        Raises NotFoundError for an unknown run, image or revision, and
        ThumbnailError for a width out of range or an image that cannot be made
        into a thumbnail within the decode cap."""
        size = thumb_width(width)
        view = self.find(key)
        counter = self._counter(view, path, revision)
        cache_key = (view.images_dir, path, counter, size)
        cached = self._cached(cache_key)
        if cached is not None:
            return cached
        # Decoded in the catalog's own threads: that bounds how many decodes run at
        # once, and also where their memory is freed to (glibc keeps a freed block
        # in the arena of the thread that used it, one arena per thread).
        return self._decoder.submit(self._make_thumbnail, view, path, counter, size).result()

    def _make_thumbnail(self, view: RunView, path: str, counter: int, size: int) -> ImageBytes:
        cache_key = (view.images_dir, path, counter, size)
        cached = self._cached(cache_key)  # made while this request waited its turn?
        if cached is not None:
            return cached
        data = self._read_summary(view, path, counter).encoded_image_string
        try:
            scaled = make_thumbnail(data, size, self.thumbnail_max_decode)
        except ThumbnailError as e:
            log.debug("No thumbnail of %r in run %r: %s", path, view.name, e)
            raise ThumbnailError(f"no thumbnail of {path!r}: {e}") from None
        except DECODE_ERRORS as e:
            # The monitor checked these bytes when it captured them: unexpected.
            log.warning("Thumbnail of %r in run %r failed", path, view.name, exc_info=True)
            raise ThumbnailError(f"no thumbnail of {path!r}: undecodable ({e})") from None
        thumb = ImageBytes(scaled, content_type(scaled), counter)
        self._thumbs.put(cache_key, thumb)
        return thumb

    def _cached(self, cache_key: tuple[Any, ...]) -> ImageBytes | None:
        return self._thumbs.get(cache_key)

    def _counter(self, view: RunView, path: str, revision: int | None) -> int:
        revisions: Sequence[Revision] | None = view.images.get(path)
        if revisions is None:
            raise NotFoundError(f"no image {path!r} in run {view.name!r}")
        if revision is None:
            return revisions[-1].counter
        for item in revisions:
            if item.counter == revision:
                return revision
        raise NotFoundError(f"image {path!r} has no revision {revision}")

    def _read_summary(self, view: RunView, path: str, counter: int) -> Any:
        """The image of one summary file. Both event forms read alike (the spec's, with
        step and wall_time 0, and ``revision_steps``'): only the tag and image are read,
        and a revision's time is its summary file's mtime, which both set to the image's."""
        file = os.path.join(view.images_dir, summary_file_name(counter, path_digest(path)))
        for event in read_events(file):
            for value in event.summary.value:
                if value.tag == path and value.HasField("image"):
                    return value.image
        raise NotFoundError(f"revision {counter} of {path!r} is no longer in the log dir")
