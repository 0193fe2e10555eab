"""Demo runs: a few runs of the packaged demo project, made with the project runner."""

from __future__ import annotations

import os

from ..engine.runs import Run
from .project import Project

__all__ = ["DEMO_PROJECT", "make_demo_runs"]

DEMO_PROJECT = os.path.join(os.path.dirname(__file__), "demo_project")

_DEMO_FLAGS = [
    {"lr": 0.05, "epochs": 4, "seed": 1},
    {"lr": 0.1, "epochs": 5, "seed": 2},
    {"lr": 0.2, "epochs": 6, "seed": 3},
]


def make_demo_runs(home: str, count: int = 3) -> list[Run]:
    """Run the demo ``train`` operation ``count`` times into the Guild home ``home``
    (flags vary between runs); returns the runs, newest first."""
    project = Project(DEMO_PROJECT, home=home)
    for i in range(count):
        flags = dict(_DEMO_FLAGS[i % len(_DEMO_FLAGS)], seed=i + 1)
        project.run("train", flags)
    return project.list_runs()
