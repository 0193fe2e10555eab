"""What the notebook side needs from a monitor, wherever it runs: the :class:`Backend`
interface (the REST API's verbs and JSON shapes) and its :class:`BackendError`.
Implementations: :class:`~jupyter_guildimg.client.ServerBackend` and
:class:`~jupyter_guildimg.local.LocalBackend`; :func:`~jupyter_guildimg.client.connect`
picks one."""

from __future__ import annotations

import abc
import os
from typing import Any

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
    def status(self) -> dict[str, Any]:
        """``{"monitor": {...}, "tensorboard": {...}}`` as ``GET status``."""

    @abc.abstractmethod
    def runs(self) -> list[dict[str, Any]]:
        """The runs, newest first, as the ``runs`` list of ``GET runs``."""

    @abc.abstractmethod
    def images(self, run_id: str) -> dict[str, Any]:
        """``{"run": {...}, "images": [{"path", "revisions": [...]}]}``, newest revision first."""

    @abc.abstractmethod
    def image(
        self, run_id: str, path: str, rev: int | None = None, thumb: int | None = None
    ) -> bytes:
        """The bytes of revision ``rev`` (newest if None), scaled to at most ``thumb`` px."""

    @abc.abstractmethod
    def refresh(self) -> dict[str, Any]:
        """Run a monitor pass now; what it wrote, added, removed and any problems."""

    @abc.abstractmethod
    def start_tensorboard(self) -> dict[str, Any]:
        """Start TensorBoard unless it runs; its state once it is ready or failed."""

    @abc.abstractmethod
    def stop_tensorboard(self) -> dict[str, Any]:
        """Stop TensorBoard; its state."""

    @abc.abstractmethod
    def wait_changes(self, since: int, timeout: float = 25) -> int:
        """The change generation, as soon as it is past ``since`` or after ``timeout`` s."""

    @abc.abstractmethod
    def add_source(self, path: str) -> dict[str, Any]:
        """Watch one more run source; ``{"sources": [...]}``. A source that contains the
        log dir or lies inside it is refused (:class:`BackendError` 400, or ValueError)."""

    @abc.abstractmethod
    def remove_source(self, path: str) -> dict[str, Any]:
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
    kind, sep, rest = path.partition(":")
    if not (sep and kind in ("guild", "dir")):
        kind, rest = "", path
    full = os.path.abspath(os.path.expanduser(rest))
    if not os.path.exists(full):
        raise FileNotFoundError(f"no such source: {rest}")
    return f"{kind}:{full}" if kind else full
