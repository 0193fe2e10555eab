"""What the extension runs while the server does, made from the app's settings and
owned by the app (:attr:`GuildImgApp.runtime <jupyter_guildimg.server.app.GuildImgApp>`):
the monitor (the run sources, added and removed live, the file watcher, the
catalog and TensorBoard's view: :class:`~jupyter_guildimg.engine.service.MonitorService`),
the change feed, the TensorBoard process, and the status that reports on them.

The monitor runs in a process of its own by default (``monitor_process``;
:mod:`.monitorclient`), so that indexing a large home never slows Jupyter's own
requests; TensorBoard and its proxy stay in the server.

TensorBoard reads a view of the log dir (:mod:`jupyter_guildimg.engine.view`): a
temporary directory of the server's own, next to the temporary log dirs, holding a
symlink to each run it shows (``tensorboard_max_runs``, changed live through ``PUT
selection``); it is removed when the server stops, like a temporary log dir.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from .. import rest
from ..engine import processes
from ..engine.layout import logdir_in_use
from ..engine.runs import parse_source
from ..engine.service import MonitorService, ServiceSettings
from ..engine.tbprocess import TensorBoardProcess
from ..engine.view import temp_view_dir
from .changefeed import ChangeFeed
from .monitorclient import HostedMonitor, LocalMonitor, Monitor, MonitorUnavailable

if TYPE_CHECKING:  # the app makes its runtime: only its settings are read here
    from .app import GuildImgApp

__all__ = ["Runtime"]

log = logging.getLogger(__name__)

_MONITOR_STOP_WAIT = 3.0  # a pass in progress may go on: the process is ending


def _source_paths(settings: ServiceSettings) -> list[str]:
    """The paths of the sources a monitor is started with."""
    return [parse_source(text, settings.root_dir)[1] for text in settings.sources]


def _no_status(settings: ServiceSettings) -> rest.MonitorStatus:
    """What status says of a monitor that has not answered yet."""
    return {
        "running": False,
        "logdir": settings.logdir,
        "interval": settings.interval,
        "passes": 0,
        "generation": 0,
        "last_pass": None,
        "last_pass_duration": None,
        "runs": 0,
        "images": 0,
        "pass_started": None,
        "pass_running_for": None,
        "stalled": False,
        "logdir_error": None,
        "problems": [],
        "watch": None,
        "index": {"indexed": 0, "found": 0, "done": False},
        "poll_interval": None,
        "sources": _source_paths(settings),
        "refused_sources": [],
        "error": None,
    }


class Runtime:
    """The monitor, the sources, TensorBoard and their status, for one server.

    Made (nothing started) from ``settings``, the app whose traitlets are every
    setting; :meth:`start` starts the monitor, :meth:`stop` stops everything and
    removes the view dir and a temporary log dir."""

    def __init__(self, settings: GuildImgApp, root_dir: str, runtime_dir: str) -> None:
        self._settings = settings
        self.root_dir = root_dir
        self._log = settings.log  # the server's logger: its log shows it
        self._own_logdir = not settings.logdir
        # Log dirs and view dirs that dead servers and kernels left behind.
        processes.clean_stale_dirs(processes.TEMP_LOGDIR_PREFIXES, logdir_in_use)
        if self._own_logdir:
            self.logdir_path = processes.temp_logdir(processes.SERVER_LOGDIR_PREFIX)
        else:
            self.logdir_path = os.path.abspath(os.path.join(root_dir, settings.logdir))
        self.view_dir = temp_view_dir(processes.SERVER_LOGDIR_PREFIX, self.logdir_path)
        self.settings = ServiceSettings(
            sources=list(settings.sources),
            root_dir=root_dir,
            logdir=self.logdir_path,
            view_dir=self.view_dir,
            interval=settings.interval,
            watch_files=settings.watch_files,
            force_polling=settings.force_polling,
            reconcile_interval=settings.reconcile_interval,
            max_reconcile_share=settings.max_reconcile_share,
            max_poll_share=settings.max_poll_share,
            index_process=settings.index_process,
            log_images=settings.log_images,
            log_hparams=settings.log_hparams,
            max_images_per_run=settings.max_images_per_run,
            max_revisions_per_image=settings.max_revisions_per_image,
            max_image_bytes=settings.max_image_bytes,
            tensorboard_max_runs=settings.tensorboard_max_runs,
            object_options={
                "endpoint_url": settings.s3_endpoint_url,
                "cache_dir": settings.object_cache_dir,
                "cache_bytes": settings.object_cache_bytes,
                "poll_interval": settings.object_poll_interval,
                "max_object_bytes": settings.max_image_bytes,
            },
        )
        self.changes = ChangeFeed(lambda: self.monitor.generation)
        self.monitor: Monitor = self._make_monitor(settings.monitor_process)
        self._last_status = _no_status(self.settings)
        killed = TensorBoardProcess.cleanup_orphans(runtime_dir)
        if killed:
            log.warning("Stopped %d TensorBoard process(es) left by a dead server", len(killed))
        # Only the proxy knows where TensorBoard serves (a secret path per start).
        # TensorBoard reads the view, and its pid record names the view dir, which is
        # what orphan clean-up looks for on its command line.
        self.tensorboard = TensorBoardProcess(
            self.view_dir,
            extra_args=settings.tensorboard_args,
            samples_per_image=settings.image_history,
            ready_timeout=settings.tensorboard_ready_timeout,
            runtime_dir=runtime_dir,
            secret_prefix=True,
            files_needed=lambda: self.monitor.files_needed(),
        )

    def _make_monitor(self, in_process_of_its_own: bool) -> Monitor:
        if in_process_of_its_own:
            return HostedMonitor(self.settings, self._log, self.changes.announce)
        return LocalMonitor(MonitorService(self.settings, self._log), self.changes.announce)

    def start(self) -> None:
        """Start the monitor: in a process of its own unless ``monitor_process`` is
        False or no process can start (then in the server's threads, said in the log)."""
        started = self.monitor.start()
        if started is not None and not started.started:
            log.warning(
                "jupyter_guildimg: the monitor runs in the server's own process: %s",
                started.message,
            )
            self.monitor = self._make_monitor(False)
            self.monitor.start()

    def start_tensorboard_soon(self) -> None:
        """Start TensorBoard in the background unless it is running or starting."""
        if self.tensorboard.status in ("stopped", "failed"):
            task = asyncio.ensure_future(self.tensorboard.start())
            self._tensorboard_start = task  # keep a reference: tasks are weakly held

    async def stop(self) -> None:
        """Stop TensorBoard and the monitor; the view dir and a temporary log dir are
        renamed away at once and deleted in the background, so a large one does not
        hold up the shutdown."""
        # At once, not one after the other: TensorBoard's grace period and the
        # monitor's wait for a pass in progress would add up past a container's stop.
        _stopped, clean = await asyncio.gather(
            self.tensorboard.stop(), self.monitor.stop(_MONITOR_STOP_WAIT)
        )
        if not clean:
            log.warning("jupyter_guildimg: the monitor's pass did not end in time; leaving it")
        processes.remove_tree_soon(self.view_dir)  # the links only: never followed
        if self._own_logdir:
            processes.remove_tree_soon(self.logdir_path)

    async def status(self) -> rest.Status:
        """``monitor``: the monitor's status (:meth:`MonitorService.status`; while its
        process is being restarted, the last one known with ``running`` false and
        ``error`` saying why); ``tensorboard``: its state."""
        try:
            monitor = await self.monitor.status()
            self._last_status = monitor
        except MonitorUnavailable as e:
            monitor = {
                **self._last_status,
                "running": False,
                "error": str(e),
                "sources": _source_paths(self.monitor.settings),
            }
        return {"monitor": monitor, "tensorboard": self.tensorboard.state()}
