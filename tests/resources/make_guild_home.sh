#!/usr/bin/env bash
# Regenerate tests/resources/guild-home/: real Guild runs made by Guild itself, and
# EXPECTED.json, what Guild reports about each of them. tests/engine/test_runs.py reads the
# runs with jupyter_guildimg.runs (without Guild) and compares with EXPECTED.json.
#
# Usage: tests/resources/make_guild_home.sh /path/to/venv/bin/guild
#
# Guild is never needed by the test suite; only this script runs it. Re-running the
# script replaces guild-home/ entirely (new run ids, new times).
#
# Guild runs in a minimal environment (env -i) so no variable of the machine that
# made the fixture lands in .guild/attrs/env or .guild/ENV. Everything Guild sees
# lives under /tmp/guildimg-fixture, which is the only project path recorded in the
# runs (opref holds the guild.yml path).
#
# What Guild 0.9.0 does with these runs (checked when this script was written):
# - it copies the project's source code to the run root (GUILD_SOURCECODE=.), not to
#   .guild/sourcecode; the `s` lines of .guild/manifest list those run-relative paths;
# - without --label, an op with flags gets a label attribute made of its flags
#   ("augment=no epochs=2 ..."); an op without flags gets no label attribute; a
#   staged run has `started` (and .guild/ENV, a shell file of its environment);
# - `guild stop` leaves exit_status -15 (terminated); each run also records cmd, env,
#   host, user, platform, pip_freeze, run_params, op, random_seed, plugins,
#   sourcecode_digest, deps, user_flags in .guild/attrs.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 GUILD_EXECUTABLE" >&2
    exit 2
fi
GUILD=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
GUILD_BIN=$(dirname "$GUILD")
# The interpreter Guild itself runs with (its shebang); used to ask Guild's own API
# for the raw `started`/`stopped` attributes, which the CLI prints only as dates.
GUILD_PY=$(sed -n '1s/^#!//p' "$GUILD")

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$HERE/guild-home
WORK=/tmp/guildimg-fixture
PROJECT=$WORK/project

rm -rf "$WORK"
mkdir -p "$PROJECT/config" "$WORK/home" "$WORK/user"

# guild with a minimal environment, run from the project directory. Reports are
# asked for with TZ=UTC (`gr`) so the dates Guild prints do not depend on this
# machine; runs are made without it, so TZ does not land in their environment.
g() {
    (cd "$PROJECT" && env -i HOME="$WORK/user" PATH="$GUILD_BIN:/usr/bin:/bin" \
        GUILD_HOME="$WORK/home" "$GUILD" "$@")
}
gr() {
    (cd "$PROJECT" && env -i HOME="$WORK/user" PATH="$GUILD_BIN:/usr/bin:/bin" \
        GUILD_HOME="$WORK/home" TZ=UTC "$GUILD" "$@")
}

# --- The project ---------------------------------------------------------------
# Full-format guild.yml: an anonymous model (ops read `train`, `fail`, `slow`) and
# a model `m` (its op reads `m:op`). No `requires`: resolved dependencies would be
# absolute symlinks into this temporary project.
cat >"$PROJECT/guild.yml" <<'EOF'
- model: ''
  operations:
    train:
      main: train
      flags:
        epochs: 2
        lr: 0.01
        augment: no
        optimizer: adam
    fail:
      main: fail
    slow:
      main: slow
- model: m
  operations:
    op:
      main: train
      flags:
        epochs: 1
EOF

# A data file in a sub-folder, so the source code Guild copies includes one. (Not a
# Python package: importing it would leave a __pycache__/ in the run, which git ignores.)
cat >"$PROJECT/config/classes.txt" <<'EOF'
cat
dog
EOF

# train: flags of four types (Guild sets these globals); writes a 4x4 RGB PNG at the
# run root and a 4x4 grey PNG in a sub-folder, with the standard library only.
cat >"$PROJECT/train.py" <<'EOF'
import os
import struct
import zlib

epochs = 2
lr = 0.01
augment = False
optimizer = "adam"


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def write_png(path, pixel, size=4):
    """A size x size PNG of one colour: pixel is (grey,) or (r, g, b)."""
    colour_type = {1: 0, 3: 2}[len(pixel)]
    rows = (b"\x00" + bytes(pixel) * size) * size
    header = struct.pack(">IIBBBBB", size, size, 8, colour_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", header))
        f.write(chunk(b"IDAT", zlib.compress(rows)))
        f.write(chunk(b"IEND", b""))


with open(os.path.join("config", "classes.txt")) as f:
    classes = f.read().split()
print(f"epochs={epochs} lr={lr} augment={augment} optimizer={optimizer} classes={classes}")
write_png("sample.png", (epochs * 40 % 256, 100, 200 if augment else 0))
os.makedirs("samples", exist_ok=True)
write_png(os.path.join("samples", "x.png"), (int(lr * 1000) % 256,))
EOF

# fail: exits non-zero (Guild status "error").
cat >"$PROJECT/fail.py" <<'EOF'
print("failing on purpose")
raise SystemExit(3)
EOF

# slow: runs until stopped (Guild status "terminated" after `guild stop`).
cat >"$PROJECT/slow.py" <<'EOF'
import time

print("sleeping", flush=True)
time.sleep(120)
EOF

# --- The runs (one after the other, so each starts later than the previous) ----
g run -y train
g run -y train epochs=5 lr=0.1 augment=yes optimizer=sgd
g run -y --label "my label" train epochs=3
g run -y m:op
g run -y fail || true # exits 3 on purpose

# --pidfile runs the op in the background; wait for it to run, stop it, wait for
# Guild to record the stop.
wait_status() { # RUN_ID STATUS
    for _ in $(seq 150); do
        [[ $(g select --attr status "$1") == "$2" ]] && return 0
        sleep 0.2
    done
    echo "run $1 never became $2" >&2
    return 1
}
g run -y --pidfile "$WORK/slow.pid" slow
slow_id=$(g select -Fo slow)
wait_status "$slow_id" running
g stop -y "$slow_id"
wait_status "$slow_id" terminated

g run -y --stage train optimizer=rmsprop

# --- What Guild reports ----------------------------------------------------------
# `guild select -A` lists every run id, newest first; for each run `guild runs info
# --json` (TZ=UTC, so `started_utc` is the UTC date Guild prints), `guild ls -s -n`
# (the source code files) and Guild's Run API for the raw `started`/`stopped`
# microseconds.
ids=$(gr select -A)
{
    for id in $ids; do
        printf '%s\t' "$id"
        gr runs info --json "$id" | tr -d '\n'
        printf '\t'
        gr ls -s -n "$id" | paste -sd, -
    done
} >"$WORK/info.tsv"

env -i GUILD_HOME="$WORK/home" HOME="$WORK/user" "$GUILD_PY" - "$WORK/info.tsv" "$(g --version)" \
    >"$WORK/EXPECTED.json" <<'EOF'
import json
import os
import sys

from guild import run as runlib

runs = []
with open(sys.argv[1]) as f:
    for line in f:
        run_id, info_json, sourcecode = line.rstrip("\n").split("\t")
        info = json.loads(info_json)
        run = runlib.Run(run_id, os.path.join(os.environ["GUILD_HOME"], "runs", run_id))
        runs.append({
            "id": info["id"],
            "operation": info["operation"],
            "label": info["label"],
            "status": info["status"],
            "started": run.get("started"),
            "started_utc": info["started"],
            "stopped": run.get("stopped"),
            "exit_status": info["exit_status"],
            "flags": info["flags"],
            "sourcecode": sorted(p for p in sourcecode.split(",") if p),
        })
json.dump({
    "guild_version": sys.argv[2],
    "order": "newest first, as `guild select -A` lists them",
    "runs": runs,
}, sys.stdout, indent=2)
sys.stdout.write("\n")
EOF

# --- The fixture: the home's runs/ only (no cache/, trash/, ...) -------------------
rm -rf "$OUT"
mkdir -p "$OUT"
cp -a "$WORK/home/runs" "$OUT/runs"
mv "$WORK/EXPECTED.json" "$OUT/EXPECTED.json"

# --- Checks: nothing the repository would lose or should not hold -----------------
if find "$OUT" -name __pycache__ -o -type l | grep .; then
    echo "fixture holds __pycache__ or symlinks (see above)" >&2
    exit 1
fi
if [[ -n ${HOME:-} && $HOME != / ]] && grep -rIlF "$HOME" "$OUT"; then
    echo "fixture mentions $HOME (see above)" >&2
    exit 1
fi
echo "Made $(ls "$OUT/runs" | wc -l) runs in $OUT"
rm -rf "$WORK"
