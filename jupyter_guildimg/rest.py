"""The REST contract between the server extension and its clients, defined once.

Everything a client and the server must agree on lives here, and only here:

- where the API is: :data:`API_PREFIX` and :data:`TENSORBOARD_PREFIX` (under the
  server's ``base_url``), each route relative to the API prefix (:data:`STATUS`,
  :data:`RUNS`, :func:`run_url` …), the query parameters and body keys;
- the environment the server exports to the kernels it starts (:data:`ENV_URL`,
  :data:`ENV_SERVER_PID`, :data:`ENV_SERVER_INFO`) and the one a user may set
  (:data:`ENV_TOKEN`);
- every JSON body, as a TypedDict: what a ``GET`` answers, what ``POST refresh``
  reports, the error body.

``labextension/src/api.ts`` mirrors the bodies field for field: each TypedDict ``X``
here is the interface ``IX`` there (JupyterLab's naming rule), and
``tests/server/test_contract.py`` fails when the two differ, or when the server's
real answers do not match these types. This module imports no framework: the engine,
the server and the kernel side all import it.

Routes (``<base_url>guildimg/api/`` + …)::

    GET    status                       Status
    GET    runs?image=P&q=TEXT          RunsList   (newest first; q: see below)
    GET    runs/<key>                   Run        (key: see below)
    GET    runs/<key>/images            RunImages
    GET    runs/<key>/images/<path>?rev=N&thumb=W   the image's bytes
    POST   refresh                      RefreshReport
    GET    tensorboard                  TensorBoardState
    POST   tensorboard                  TensorBoardState: starts TensorBoard unless it is
                                        ready or starting, and answers once it is ready
                                        or failed; the body {"restart": true} stops it
                                        first (an explicit restart)
    DELETE tensorboard                  TensorBoardState
    GET    sources                      Sources
    POST   sources  {"path": P}         Sources
    DELETE sources?path=P               Sources
    GET    changes?since=G&timeout=S    Changes    (a long poll)
    GET    selection                    Selection  (the runs TensorBoard shows)
    PUT    selection  SelectionChange   Selection: {"mode": "auto"} (the server's
                                        policy), {"mode": "runs", "runs": [keys]}
                                        or {"mode": "filter", "filter": TEXT}

Every error is :class:`Error` (``{"message": ...}``, and jupyter_server's ``reason``).

**Which run a key names** (``runs/<key>``, the panel's ``run=`` and ``%guildimg --run``
alike, all through :meth:`jupyter_guildimg.engine.catalog.Catalog.find`): the run whose
:attr:`Run.id <Run>` is ``key``; else the run whose ``run_id`` is ``key``; else the one
run whose ``run_id`` starts with ``key``, when ``key`` has at least
:data:`MIN_PREFIX` characters. Several candidates at any step: 404 naming them.

**Which runs ``q`` keeps** (``GET runs?q=``): ``q`` is split into words at white
space; a run is kept when every word occurs, ignoring case, in at least one of its
:data:`FILTER_FIELDS`. An empty ``q`` keeps every run.

**Which runs TensorBoard shows** (:class:`Selection`; the rule is
:class:`jupyter_guildimg.engine.view.Selection`'s): in mode ``auto`` every run while
there are at most ``limit`` (the server's ``tensorboard_max_runs``; 0: no limit), else
the ``limit`` newest and every running run; in mode ``runs`` the runs named (each key
as ``runs/<key>`` takes it; one that names no run is a 400, and a run that is gone
later is simply not shown); in mode ``filter`` the runs ``GET runs?q=<filter>`` keeps,
now and as runs come and go. The catalog and every client keep covering every run:
:attr:`Run.in_tensorboard <Run>` says which ones TensorBoard shows.
"""

from __future__ import annotations

import urllib.parse
from typing import Literal, TypedDict

__all__ = [
    "API_PREFIX",
    "BODIES",
    "CHANGES",
    "ENV_SERVER_INFO",
    "ENV_SERVER_PID",
    "ENV_TOKEN",
    "ENV_URL",
    "FILTER_FIELDS",
    "MIN_PREFIX",
    "PARAM_IMAGE",
    "PARAM_PATH",
    "PARAM_Q",
    "PARAM_RESTART",
    "PARAM_REV",
    "PARAM_SINCE",
    "PARAM_THUMB",
    "PARAM_TIMEOUT",
    "REFRESH",
    "RUN",
    "RUNS",
    "RUN_IMAGE",
    "RUN_IMAGES",
    "SELECTION",
    "SOURCES",
    "STATUS",
    "TENSORBOARD",
    "TENSORBOARD_PREFIX",
    "Changes",
    "Error",
    "Image",
    "IndexProgress",
    "MonitorProblem",
    "MonitorState",
    "MonitorStatus",
    "Problem",
    "RefreshReport",
    "RefusedSource",
    "Revision",
    "Run",
    "RunImages",
    "RunKind",
    "RunsList",
    "Selection",
    "SelectionChange",
    "SelectionMode",
    "SourceInfo",
    "SourceWatch",
    "Sources",
    "Status",
    "TensorBoardFiles",
    "TensorBoardState",
    "TensorBoardStatus",
    "WatchStatus",
    "Written",
    "run_image_url",
    "run_images_url",
    "run_url",
]

# -- where ---------------------------------------------------------------------------

API_PREFIX = "guildimg/api"
"""The REST API, under the server's ``base_url``."""
TENSORBOARD_PREFIX = "guildimg/tensorboard"
"""TensorBoard's pages through the server's proxy, under the server's ``base_url``."""

# Routes, relative to API_PREFIX. The templates' ``{key}`` is a run key (one URL
# segment, percent-encoded), ``{path}`` an image path (its slashes kept).
STATUS = "status"
RUNS = "runs"
RUN = "runs/{key}"
RUN_IMAGES = "runs/{key}/images"
RUN_IMAGE = "runs/{key}/images/{path}"
REFRESH = "refresh"
TENSORBOARD = "tensorboard"
SOURCES = "sources"
CHANGES = "changes"
SELECTION = "selection"

# Query parameters and body keys.
PARAM_IMAGE = "image"  # GET runs: only runs that captured this image path
PARAM_Q = "q"  # GET runs: the filter text
PARAM_REV = "rev"  # GET runs/<key>/images/<path>: a revision (default: the newest)
PARAM_THUMB = "thumb"  # GET runs/<key>/images/<path>: a thumbnail this wide
PARAM_SINCE = "since"  # GET changes: the last generation the client saw
PARAM_TIMEOUT = "timeout"  # GET changes: seconds to wait at most
PARAM_PATH = "path"  # POST sources (a body key) and DELETE sources (a query parameter)
PARAM_RESTART = "restart"  # POST tensorboard: a body key; true restarts a running one

MIN_PREFIX = 2
"""The fewest characters of a run id that name a run by prefix."""

FILTER_FIELDS = ("run_id", "short_id", "name", "operation", "label", "status")
"""The :class:`Run` fields ``GET runs?q=`` looks in: what a user sees, not the URL key
``id`` (for a plain run a digest, whose hex digits would match words by chance)."""


def run_url(key: str) -> str:
    """The route of one run (relative to :data:`API_PREFIX`)."""
    return RUN.format(key=_segment(key))


def run_images_url(key: str) -> str:
    """The route of a run's images listing (relative to :data:`API_PREFIX`)."""
    return RUN_IMAGES.format(key=_segment(key))


def run_image_url(key: str, path: str) -> str:
    """The route of one image's bytes (relative to :data:`API_PREFIX`)."""
    return RUN_IMAGE.format(key=_segment(key), path=urllib.parse.quote(path))


def _segment(text: str) -> str:
    return urllib.parse.quote(text, safe="")


# -- the environment -------------------------------------------------------------------

ENV_URL = "JUPYTER_GUILDIMG_URL"
"""Exported by the server to its kernels: its URL, ``base_url`` included."""
ENV_SERVER_PID = "JUPYTER_GUILDIMG_SERVER_PID"
"""Exported by the server to its kernels: its process id (whose runtime file holds the token)."""
ENV_SERVER_INFO = "JUPYTER_GUILDIMG_SERVER_INFO"
"""Exported by the server to its kernels: the path of its runtime file (0600)."""
ENV_TOKEN = "JUPYTER_GUILDIMG_TOKEN"
"""Never exported (every process the server starts would inherit it); read by a kernel
when a user sets it by hand."""

# -- the bodies ------------------------------------------------------------------------

RunKind = Literal["guild", "dir"]
TensorBoardStatus = Literal["stopped", "starting", "ready", "failed"]
SelectionMode = Literal["auto", "runs", "filter"]


class Run(TypedDict):
    """A run as ``GET runs`` lists it. ``id`` is its key in URLs (the Guild id, or a
    digest of a plain run's directory); ``run_id`` the id its source gives it (the
    Guild id, or a plain run's path relative to its source); times are seconds since
    the epoch; ``in_tensorboard``: whether TensorBoard shows it (:class:`Selection`)."""

    id: str
    run_id: str
    short_id: str
    name: str
    operation: str
    label: str
    status: str
    started: float | None
    stopped: float | None
    kind: RunKind
    source: str
    image_count: int
    in_tensorboard: bool


class RunsList(TypedDict):
    """``GET runs``."""

    runs: list[Run]


class Revision(TypedDict):
    """One stored revision of an image; ``time`` is the file's mtime, ``size`` its bytes."""

    revision: int
    time: float
    width: int
    height: int
    size: int


class Image(TypedDict):
    """A captured image: its revisions newest first, and ``dropped``, how many of its
    oldest revisions were removed under ``max_revisions_per_image``."""

    path: str
    dropped: int
    revisions: list[Revision]


class RunImages(TypedDict):
    """``GET runs/<key>/images``: the run and its images by path."""

    run: Run
    images: list[Image]


class Written(TypedDict):
    """An image a pass summarized: the run's log dir name and the image's path."""

    run: str
    path: str


class Problem(TypedDict):
    """Something a pass could not do: ``run`` is the run's log dir name ("" for what
    no run owns), ``path`` run-relative (absolute when ``run`` is "")."""

    run: str
    path: str
    message: str


class MonitorProblem(TypedDict):
    """A :class:`Problem` in ``GET status``, with when it happened."""

    time: float
    run: str
    path: str
    message: str


class RefreshReport(TypedDict):
    """``POST refresh``: what the pass did (``duration`` in seconds)."""

    duration: float
    runs: int
    images: int
    written: list[Written]
    runs_added: list[str]
    runs_removed: list[str]
    runs_changed: list[str]
    problems: list[Problem]


class TensorBoardFiles(TypedDict):
    """The event files TensorBoard would hold open for the runs it shows (``needed``,
    a cheap estimate) and how many files it may open (``limit``: its RLIMIT_NOFILE soft
    limit, raised to the hard limit)."""

    needed: int
    limit: int


class TensorBoardState(TypedDict):
    """TensorBoard's state: ``summary`` is the one sentence every client shows for it
    (made by the server, rendered as is); ``reason`` says why it failed; ``started`` is
    when its process started (seconds since the epoch); ``files`` its open files, and
    ``warnings`` plain sentences to show with it (too few open files for the runs
    shown, TensorBoard's own warnings about files it could not open or read)."""

    status: TensorBoardStatus
    summary: str
    reason: str
    port: int | None
    pid: int | None
    restarts: int
    stderr_tail: list[str]
    started: float | None
    files: TensorBoardFiles
    warnings: list[str]


class RefusedSource(TypedDict):
    """A configured source that is not watched, and why."""

    path: str
    message: str


class SourceWatch(TypedDict):
    """How one watched root (a Guild home's ``runs/``, a folder of runs) is followed:
    by file-system ``"events"`` (``reason`` "") or by ``"polling"``, ``reason`` saying
    why (a network or FUSE mount, the watch limit, the setting, not there yet)."""

    path: str
    mode: Literal["events", "polling"]
    reason: str


class WatchStatus(TypedDict):
    """How the monitor learns of changes: per root, the inotify watches held, and the
    seconds between full (reconciling) passes."""

    sources: list[SourceWatch]
    watches: int
    reconcile_interval: float


class IndexProgress(TypedDict):
    """How far the monitor's index is: of the ``found`` runs its full pass listed,
    ``indexed`` are synced (and listed) so far; ``done`` once none is being indexed.
    A first pass, and one meeting many new runs, lists them as it goes, newest first."""

    indexed: int
    found: int
    done: bool


class MonitorState(TypedDict):
    """What :meth:`RunsMonitor.status <jupyter_guildimg.engine.monitor.RunsMonitor.status>`
    says of itself: the thread and its last pass (``last_pass`` is when it ended,
    ``generation`` the change counter), the pass in progress (``stalled`` once it runs
    too long), why the log dir could not be taken, and the latest problems; ``index``,
    the first index's progress; ``poll_interval``, the seconds between polling passes
    now (``interval``, longer when a pass is costly; ``None`` while events drive them)."""

    running: bool
    logdir: str
    interval: float
    passes: int
    generation: int
    last_pass: float | None
    last_pass_duration: float | None
    runs: int
    images: int
    pass_started: float | None
    pass_running_for: float | None
    stalled: bool
    logdir_error: str | None
    problems: list[MonitorProblem]
    watch: WatchStatus | None
    index: IndexProgress
    poll_interval: float | None


class MonitorStatus(MonitorState):
    """The monitor in ``GET status``: its :class:`MonitorState`, the watched
    ``sources``, the configured sources refused, and ``error``, why capture is off."""

    sources: list[str]
    refused_sources: list[RefusedSource]
    error: str | None


class Status(TypedDict):
    """``GET status``."""

    monitor: MonitorStatus
    tensorboard: TensorBoardState


class SourceInfo(TypedDict):
    """One watched source: its absolute ``path``, its ``kind`` (a Guild home or a
    folder of plain runs), whether it ``exists`` now (a default ``runs`` is watched
    until it appears) and ``label``, how to show it: relative to the server's root
    directory when inside it (``"."`` for the root itself), else with the user's home
    as ``~``."""

    path: str
    kind: RunKind
    exists: bool
    label: str


class Sources(TypedDict):
    """``GET``/``POST``/``DELETE sources``: the watched paths, and ``details`` of
    each, in the same order."""

    sources: list[str]
    details: list[SourceInfo]


class Changes(TypedDict):
    """``GET changes``: the change generation."""

    generation: int


class Selection(TypedDict):
    """``GET``/``PUT selection``: the runs TensorBoard shows, ``runs`` (their keys,
    newest first: ``shown`` of the ``total`` runs), and the rule that chose them:
    ``mode``, ``filter`` (mode ``filter``; else "") and ``limit`` (mode ``auto``'s
    number of runs; 0: no limit)."""

    mode: SelectionMode
    runs: list[str]
    filter: str
    shown: int
    total: int
    limit: int


class _SelectionMode(TypedDict):
    mode: SelectionMode


class SelectionChange(_SelectionMode, total=False):
    """``PUT selection``'s body: ``mode``, with ``runs`` (run keys) for mode ``runs``
    and ``filter`` for mode ``filter``; no other key."""

    runs: list[str]
    filter: str


class _ErrorMessage(TypedDict):
    message: str


class Error(_ErrorMessage, total=False):
    """Every error's body: ``message`` for the user; jupyter_server adds ``reason``
    (the HTTP reason, or None) to the errors it raises itself."""

    reason: str | None


BODIES: tuple[type, ...] = (
    Run,
    RunsList,
    Revision,
    Image,
    RunImages,
    Written,
    Problem,
    MonitorProblem,
    RefreshReport,
    TensorBoardFiles,
    TensorBoardState,
    RefusedSource,
    SourceWatch,
    WatchStatus,
    IndexProgress,
    MonitorStatus,
    Status,
    SourceInfo,
    Sources,
    Changes,
    Selection,
    SelectionChange,
    Error,
)
"""Every body above, for the contract test."""
