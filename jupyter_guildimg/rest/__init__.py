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
real answers do not match these types. This package imports no framework: the engine,
the server and the kernel side all import it, as one namespace (``from .. import rest``,
then ``rest.X``): :mod:`~jupyter_guildimg.rest.names` holds where (prefixes, routes,
parameters, the environment), :mod:`~jupyter_guildimg.rest.bodies` the bodies.

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
:class:`jupyter_guildimg.engine.selection.Selection`'s): in mode ``auto`` every run while
there are at most ``limit`` (the server's ``tensorboard_max_runs``; 0: no limit), else
the ``limit`` newest and every running run; in mode ``runs`` the runs named (each key
as ``runs/<key>`` takes it; one that names no run is a 400, and a run that is gone
later is simply not shown); in mode ``filter`` the runs ``GET runs?q=<filter>`` keeps,
now and as runs come and go. The catalog and every client keep covering every run:
:attr:`Run.in_tensorboard <Run>` says which ones TensorBoard shows.
"""

from __future__ import annotations

from .bodies import (
    BODIES,
    Changes,
    Error,
    Image,
    IndexProgress,
    MonitorProblem,
    MonitorState,
    MonitorStatus,
    Problem,
    RefreshReport,
    RefusedSource,
    Revision,
    Run,
    RunImages,
    RunKind,
    RunsList,
    Selection,
    SelectionChange,
    SelectionMode,
    SourceInfo,
    Sources,
    SourceWatch,
    Status,
    TensorBoardFiles,
    TensorBoardState,
    TensorBoardStatus,
    WatchStatus,
    Written,
)

# Not public: test_contract builds test bodies on it, as rest.Error does.
from .bodies import _ErrorMessage as _ErrorMessage
from .names import (
    API_PREFIX,
    CHANGES,
    ENV_SERVER_INFO,
    ENV_SERVER_PID,
    ENV_TOKEN,
    ENV_URL,
    FILTER_FIELDS,
    MIN_PREFIX,
    PARAM_IMAGE,
    PARAM_PATH,
    PARAM_Q,
    PARAM_RESTART,
    PARAM_REV,
    PARAM_SINCE,
    PARAM_THUMB,
    PARAM_TIMEOUT,
    REFRESH,
    RUN,
    RUN_IMAGE,
    RUN_IMAGES,
    RUNS,
    SELECTION,
    SOURCES,
    STATUS,
    TENSORBOARD,
    TENSORBOARD_PREFIX,
    run_image_url,
    run_images_url,
    run_url,
)

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
