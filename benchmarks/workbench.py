"""How smooth is the image workbench's one slider over many runs and revisions?

Starts ``jupyter lab`` with the extension over a Guild home of --runs runs, each
with one 512×512 image written --revisions times (a different picture each time;
the monitor captures every version as a revision), opens Lab in headless Chromium
(Debian's, driven by Playwright, as the browser tests do) and the workbench on
every run's image (``guildimg:compare-runs``). Then the page itself scrubs the
slider over every stop (oldest → newest, then back), moving it at an animation
frame, and notes every frame's ``requestAnimationFrame`` timestamp and whether
every cell already shows the slider's revision. Three passes: one stop per frame
(a very fast drag; the first pass fetches and decodes the revisions, the second
finds what the cache kept), then one stop every 4 frames (a steady drag).

Prints, per pass, the median and worst frame time (the gap between consecutive
frames' timestamps: 16.7 ms is 60 frames a second), the share of frames where
every cell was on the slider's revision, and how long after the last move every
cell showed the last stop.

    python benchmarks/workbench.py
    python benchmarks/workbench.py --runs 4 --revisions 20
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from jupyter_guildimg.guild.project import write_run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser import Lab, chromium, jupyter

PATH = "samples/frame.png"
SIZE = 512

# Runs in the page: the slider moved one stop every `every` frames, over every stop
# and back; then the frames until every cell shows the last stop (the settle time).
SCRUB = """async every => {
    const slider = document.querySelector('.guildimg-wb-slider');
    const cells = [...document.querySelectorAll('.guildimg-wb-cell')];
    const last = Number(slider.max);
    const stops = [...Array(last + 1).keys()];
    const order = stops.concat(stops.slice().reverse());
    const onStop = stop => cells.every(c => Number(c.dataset.index) === stop);
    const frames = [];
    let onTarget = 0;
    let stop = -1;
    await new Promise(resolve => {
        let frame = 0;
        const step = now => {
            frames.push(now);
            if (stop >= 0 && onStop(stop)) {
                onTarget++;
            }
            if (frame % every === 0) {
                const i = frame / every;
                if (i === order.length) {
                    resolve();
                    return;
                }
                stop = order[i];
                slider.value = String(stop);
                slider.dispatchEvent(new Event('input', { bubbles: true }));
            }
            frame++;
            requestAnimationFrame(step);
        };
        requestAnimationFrame(step);
    });
    const end = performance.now();
    while (!onStop(stop) && performance.now() - end < 30000) {
        await new Promise(r => requestAnimationFrame(r));
    }
    const gaps = frames.slice(1).map((t, k) => t - frames[k]);
    return { gaps, onTarget, frames: frames.length, settle: performance.now() - end };
}"""


def picture(run: int, revision: int) -> bytes:
    """A 512×512 picture particular to the run and revision: a gradient and a
    moving disc."""
    image = Image.linear_gradient("L").resize((SIZE, SIZE)).convert("RGB")
    draw = ImageDraw.Draw(image)
    x = (revision * 5) % (SIZE - 80)
    draw.ellipse((x, 40 * (run % 10), x + 80, 40 * (run % 10) + 80), fill=(255, 60 + run * 19, 0))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def revision_count(lab: Lab, run_id: str) -> int:
    for image in lab.api(f"runs/{run_id}/images")["images"]:
        if image["path"] == PATH:
            return len(image["revisions"])
    return 0


def make_runs(lab: Lab, home: Path, runs: int, revisions: int) -> list[str]:
    """The runs, each image written ``revisions`` times and captured each time."""
    dirs = [
        write_run(home, op="train", label=f"bench{i}", files={PATH: picture(i, 0)})
        for i in range(runs)
    ]
    deadline = time.monotonic() + 60
    while len(lab.api("runs")["runs"]) < runs:
        assert time.monotonic() < deadline, "the runs were not listed"
        time.sleep(0.2)
    ids = {run["label"]: run["id"] for run in lab.api("runs")["runs"]}
    keys = [ids[f"bench{i}"] for i in range(runs)]
    for revision in range(1, revisions + 1):
        if revision > 1:
            for i, run_dir in enumerate(dirs):
                Path(run_dir, PATH).write_bytes(picture(i, revision))
        deadline = time.monotonic() + 60
        while any(revision_count(lab, key) < revision for key in keys):
            assert time.monotonic() < deadline, f"revision {revision} was not captured"
            time.sleep(0.1)
        if revision % 10 == 0:
            print(f"  {revision} revisions captured", flush=True)
    return keys


def summary(name: str, result: dict[str, Any]) -> str:
    gaps = result["gaps"]
    share = 100 * result["onTarget"] / max(1, result["frames"])
    return (
        f"{name}: {len(gaps)} frames, median {statistics.median(gaps):.1f} ms, "
        f"worst {max(gaps):.1f} ms; every cell on the slider's revision in {share:.0f} % "
        f"of frames; all on the last stop {result['settle']:.0f} ms after the last move"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--revisions", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "guild-home"
        home.mkdir()
        config = "c.LabApp.expose_app_in_browser = True\n"
        with jupyter("lab", tmp, home, config) as lab:
            print(f"writing {args.runs} runs × {args.revisions} revisions of {SIZE} px", flush=True)
            keys = make_runs(lab, home, args.runs, args.revisions)
            with chromium(tmp / "profile") as browser:
                page = browser.page
                page.goto(lab.page_url("/lab/workspaces/bench"))
                page.wait_for_function(
                    "() => window.jupyterapp?.commands.hasCommand('guildimg:compare-runs')",
                    timeout=60_000,
                )
                page.evaluate(
                    "([runs, path]) => window.jupyterapp.commands.execute("
                    "'guildimg:compare-runs', {runs, path})",
                    [keys, PATH],
                )
                page.wait_for_function(
                    """count => {
                        const cells = [...document.querySelectorAll('.guildimg-wb-cell')];
                        return cells.length === count && cells.every(c => c.dataset.revision);
                    }""",
                    arg=len(keys),
                    timeout=60_000,
                )
                results = [
                    ("one stop per frame (60 stops/s), first pass", page.evaluate(SCRUB, 1)),
                    ("one stop per frame, second pass", page.evaluate(SCRUB, 1)),
                    ("one stop per 4 frames (15 stops/s)", page.evaluate(SCRUB, 4)),
                ]
                assert not browser.errors, browser.errors
    print(f"slider scrubbing, {args.runs} runs × {args.revisions} revisions of {SIZE} px:")
    for name, result in results:
        print("  " + summary(name, result))


if __name__ == "__main__":
    main()
