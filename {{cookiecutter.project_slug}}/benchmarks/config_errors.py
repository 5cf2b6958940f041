"""How long a config error takes to report, next to `python train.py --cfg job`.

    python benchmarks/config_errors.py [--repeats 7]

Runs each command `--repeats` times, interleaved, in a fresh interpreter as a user would, and
prints a markdown table: median wall time and its ratio to `--cfg job` (which composes the
config and prints it, importing neither torch nor Lightning). A bad value is reported before
any heavy import, so the ratio stays close to 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
COMMANDS = {
    "--cfg job": ["--cfg", "job"],
    "dataset.batch_size=0": ["dataset.batch_size=0"],
    "optimizer.lr=abc": ["optimizer.lr=abc"],
    "model=alexnett": ["model=alexnett"],
}


def seconds_of(args: list[str], run_dir: Path, expected_status: int) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "train.py", *args, f"hydra.run.dir={run_dir}"],
        cwd=PROJECT_DIR,
        capture_output=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    seconds = time.perf_counter() - started
    if result.returncode != expected_status:
        sys.exit(f"`train.py {' '.join(args)}` exited with {result.returncode}:\n{result.stderr.decode()}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.repeats):  # interleaved, so drift hits every command alike
            for name, command in COMMANDS.items():
                times[name].append(seconds_of(command, Path(scratch, "run"), 0 if name == "--cfg job" else 2))
    baseline = statistics.median(times["--cfg job"])
    print("| command | median time | vs `--cfg job` |\n|---|---|---|")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"| `python train.py {name}` | {median:.2f} s | {median / baseline:.2f}x |")
    print(f"\n{args.repeats} runs each, interleaved, on {os.cpu_count()} CPU cores.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
