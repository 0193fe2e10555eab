"""What the notebook side needs from a monitor, wherever it runs: the :class:`Backend`
interface (the REST API's verbs, answering the bodies :mod:`jupyter_guildimg.rest`
defines) and its :class:`BackendError`.
Implementations: :class:`~jupyter_guildimg.notebook.client.ServerBackend` and
:class:`~jupyter_guildimg.notebook.local.LocalBackend`;
:func:`~jupyter_guildimg.notebook.client.connect` picks one."""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence

from .. import rest
from ..engine.runs import parse_source

__all__ = [
    "START_TIMEOUT",
    "Backend",
    "BackendError",
    "check_source",
]

START_TIMEOUT = 180.0  # TensorBoard's own ready timeout is 120 s by default


class BackendError(RuntimeError):
    """A request the backend refused or could not answer. ``str()`` is the API's
    ``message``; ``status`` is the HTTP status (None when the server was not reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Backend(abc.ABC):
    """What the panel and the magic use. Every method may raise :class:`BackendError`."""

    description: str

    @abc.abstractmethod
    def status(self) -> rest.Status:
        """``{"monitor": {...}, "tensorboard": {...}}`` as ``GET status``."""

    @abc.abstractmethod
    def runs(self, image: str | None = None, q: str | None = None) -> list[rest.Run]:
        """The runs, newest first, as the ``runs`` list of ``GET runs``: with ``image``
        only those that captured that image path, with ``q`` only those whose fields
        hold every word of ``q`` (the server's one filter rule: see
        :mod:`~jupyter_guildimg.rest`)."""

    @abc.abstractmethod
    def run(self, key: str) -> rest.Run:
        """The run ``key`` names (``GET runs/<key>``): its id, its Guild or plain-run
        id, or a unique prefix of that of at least ``rest.MIN_PREFIX`` characters.
        :class:`BackendError` 404 when no run or several runs match (the message
        says which)."""

    def run_id(self, key: str) -> str:
        """The id of the run ``key`` names (:meth:`run`); :class:`ValueError` with the
        API's message when it names none, for the panel and the magic to show."""
        try:
            return self.run(key)["id"]
        except BackendError as e:
            if e.status == 404:
                raise ValueError(str(e)) from None
            raise

    @abc.abstractmethod
    def images(self, run_id: str) -> rest.RunImages:
        """``{"run": {...}, "images": [{"path", "dropped", "revisions": [...]}]}``,
        newest revision first; ``run_id`` as :meth:`run` takes it."""

    @abc.abstractmethod
    def image(
        self, run_id: str, path: str, rev: int | None = None, thumb: int | None = None
    ) -> bytes:
        """The bytes of revision ``rev`` (newest if None), scaled to at most ``thumb`` px."""

    @abc.abstractmethod
    def refresh(self) -> rest.RefreshReport:
        """Run a monitor pass now; what it wrote, added, removed and any problems."""

    @abc.abstractmethod
    def start_tensorboard(self) -> rest.TensorBoardState:
        """Start TensorBoard unless it is ready or starting (then wait for that start);
        its state once it is ready or failed."""

    @abc.abstractmethod
    def restart_tensorboard(self) -> rest.TensorBoardState:
        """Stop TensorBoard if it runs and start it again; its state once it is ready
        or failed."""

    @abc.abstractmethod
    def stop_tensorboard(self) -> rest.TensorBoardState:
        """Stop TensorBoard; its state."""

    @abc.abstractmethod
    def selection(self) -> rest.Selection:
        """The runs TensorBoard shows, and the rule that chose them (``GET selection``)."""

    @abc.abstractmethod
    def set_selection(
        self,
        mode: rest.SelectionMode,
        runs: Sequence[str] | None = None,
        filter: str | None = None,
    ) -> rest.Selection:
        """Choose the runs TensorBoard shows (``PUT selection``): ``mode`` "auto" (the
        policy: every run up to a limit, else the newest and the running ones), "runs"
        with ``runs`` (run keys: ids or unique prefixes) or "filter" with ``filter``
        (the rule of :meth:`runs`' ``q``); TensorBoard follows without a restart. The
        new selection; :class:`BackendError` 400 for a mode without its argument, or a
        run key that names no run or several (the message says which)."""

    @abc.abstractmethod
    def wait_changes(self, since: int, timeout: float = 25) -> int:
        """The change generation, as soon as it is past ``since`` or after ``timeout`` s."""

    @abc.abstractmethod
    def sources(self) -> rest.Sources:
        """The watched sources and their details, as ``GET sources``."""

    @abc.abstractmethod
    def add_source(self, path: str) -> rest.Sources:
        """Watch one more run source; ``{"sources": [...]}``. A source that contains the
        log dir or lies inside it is refused (:class:`BackendError` 400, or ValueError)."""

    @abc.abstractmethod
    def remove_source(self, path: str) -> rest.Sources:
        """Stop watching a run source (as ``status`` lists it, or as it was added); its
        runs leave the log dir at the next pass. ``{"sources": [...]}``; not watched:
        :class:`BackendError` with status 404."""

    @abc.abstractmethod
    def tensorboard_src(self) -> str:
        """The URL a browser showing the notebook uses for TensorBoard (an iframe src)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the backend holds. Idempotent."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool: ...

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_source(path: str) -> str:
    """``path`` made absolute (a ``guild:``/``dir:`` kind kept), or FileNotFoundError
    naming it when it does not exist here."""
    kind, full = parse_source(path)
    if not os.path.exists(full):
        raise FileNotFoundError(f"no such source: {path.partition(':')[2] if kind else path}")
    return f"{kind}:{full}" if kind else full
