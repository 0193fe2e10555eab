"""Where the REST API is, as client and server spell it: the prefixes under the
server's ``base_url``, the routes relative to :data:`API_PREFIX` (and the functions
that fill their templates), the query parameters and body keys, and the environment
the server exports to its kernels. Part of :mod:`jupyter_guildimg.rest`, whose
docstring is the contract; import that package, not this module."""

from __future__ import annotations

import urllib.parse

__all__ = [
    "API_PREFIX",
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
"""The :class:`~jupyter_guildimg.rest.Run` fields ``GET runs?q=`` looks in: what a
user sees, not the URL key ``id`` (for a plain run a digest, whose hex digits would
match words by chance)."""


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
