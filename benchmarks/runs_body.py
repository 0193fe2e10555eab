"""What does ``GET runs`` cost the server at scale? (issue 11)

Builds --runs synthetic run views (the shape a monitor hands the catalog: two
images each), then times, side by side in one process, the two ways to make the
body and its ETag: the catalog's list of dicts through ``json.dumps`` (the old
handler, all on the event loop) and ``Catalog.runs_body`` (parts encoded once per
view, joined per request; the handler runs it in a worker thread). Both bodies are
checked to be the same bytes. Prints medians of --repeats and their ratio.

    python benchmarks/runs_body.py --runs 10000
    python benchmarks/runs_body.py --runs 100000 --repeats 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
import uuid
from collections.abc import Callable

from jupyter_guildimg.engine.catalog import Catalog
from jupyter_guildimg.engine.runlog import RunView
from jupyter_guildimg.engine.runrecord import Run


class _Views:
    """Stands for the monitor: the catalog reads only its ``views``."""

    def __init__(self, views: tuple[RunView, ...]) -> None:
        self.views = views


def _views(count: int) -> tuple[RunView, ...]:
    now = time.time()
    return tuple(
        RunView(
            Run(
                id=uuid.uuid4().hex,
                dir=f"/home/runs/{i}",
                operation="train",
                label=f"lr={i / count:.4f}",
                status="completed",
                started=now - count + i,
                stopped=now - count + i + 5,
                source="/home",
            ),
            f"run {i}",
            f"/logdir/{i}",
            {"a.png": (), "samples/b.png": ()},
        )
        for i in range(count)
    )


def _median_ms(make: Callable[[], bytes], repeats: int) -> tuple[float, bytes]:
    times, body = [], b""
    for _ in range(repeats):
        started = time.perf_counter()
        body = make()
        hashlib.sha1(body).hexdigest()  # the ETag, as Tornado makes it
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3, body


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    catalog = Catalog(_Views(_views(args.runs)))  # type: ignore[arg-type]
    try:
        catalog.runs()  # both ways start from the catalog's per-view cache
        old_ms, old = _median_ms(
            lambda: json.dumps({"runs": catalog.runs()}).encode(), args.repeats
        )
        new_ms, new = _median_ms(catalog.runs_body, args.repeats)
    finally:
        catalog.close()
    assert new == old, "the bodies differ"
    print(f"{args.runs} runs, body {len(new) / 1e6:.1f} MB, median of {args.repeats}:")
    print(f"  json.dumps of the list + ETag   {old_ms:8.1f} ms")
    print(f"  runs_body + ETag                {new_ms:8.1f} ms   ({old_ms / new_ms:.1f}× less)")


if __name__ == "__main__":
    main()
