"""Every JSON body of the REST API, as a TypedDict (``labextension/src/api.ts``
declares each ``X`` as ``IX``), and :data:`BODIES`, all of them for the contract
test. Part of :mod:`jupyter_guildimg.rest`, whose docstring is the contract; import
that package, not this module."""

from __future__ import annotations

from typing import Literal, TypedDict

__all__ = [
    "BODIES",
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
]

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
    number of runs; 0: no limit). ``summary`` and ``rule`` say it in words for every
    client to show as they are: "12 of 10,000 runs", "auto: the 200 newest and every
    running run"."""

    mode: SelectionMode
    runs: list[str]
    filter: str
    shown: int
    total: int
    limit: int
    summary: str
    rule: str


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
