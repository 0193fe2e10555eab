"""Demo runs: a few runs of the packaged demo project, made with the project runner,
and a *live* one that keeps training after start-up, so there is history to watch."""

from __future__ import annotations

import os

from ..engine.runs import Run
from .project import Project, RunningOp

__all__ = [
    "DEMO_PROJECT",
    "LIVE_EPOCHS",
    "LIVE_EPOCH_SECONDS",
    "LIVE_LABEL",
    "make_demo_runs",
    "start_live_run",
]

DEMO_PROJECT = os.path.join(os.path.dirname(__file__), "demo_project")

_DEMO_FLAGS = [
    {"lr": 0.05, "epochs": 4, "seed": 1},
    {"lr": 0.1, "epochs": 5, "seed": 2},
    {"lr": 0.2, "epochs": 6, "seed": 3},
]

#: The live run's epochs and seconds per epoch: about two minutes of training.
LIVE_EPOCHS = 40
LIVE_EPOCH_SECONDS = 3.0
#: The live run's label, so it is told apart in every list.
LIVE_LABEL = "live"


def make_demo_runs(home: str, count: int = 3, *, label: str | None = None) -> list[Run]:
    """Run the demo ``train`` operation ``count`` times into the Guild home ``home``
    (flags vary between runs; ``label``: every run's label, default the flags);
    returns the runs made, newest first (the home may hold others)."""
    project = Project(DEMO_PROJECT, home=home)
    made = set()
    for i in range(count):
        flags = dict(_DEMO_FLAGS[i % len(_DEMO_FLAGS)], seed=i + 1)
        made.add(project.run("train", flags, label=label).id)
    return [run for run in project.list_runs() if run.id in made]


def start_live_run(
    home: str, epochs: int = LIVE_EPOCHS, epoch_seconds: float = LIVE_EPOCH_SECONDS
) -> RunningOp:
    """Start one more demo run in the background that trains for ``epochs`` epochs of
    ``epoch_seconds`` each, rewriting ``samples.png`` and logging ``loss`` every epoch:
    each epoch is a new revision for the image viewer's slider and TensorBoard's step
    slider. The caller waits for it or terminates it (:class:`RunningOp`)."""
    flags = {"lr": 0.05, "epochs": epochs, "seed": 7, "delay": epoch_seconds}
    return Project(DEMO_PROJECT, home=home).start("train", flags, label=LIVE_LABEL)
