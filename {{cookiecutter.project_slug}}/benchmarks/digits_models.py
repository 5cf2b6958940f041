"""What each shipped configuration reaches on digits, and how long it takes on this machine.

    python benchmarks/digits_models.py [--repeats 3] [extra overrides for every run]

Runs `python train.py <overrides>` for each configuration (W&B disabled), `--repeats` times,
and prints a markdown table: median wall time, its ratio to the default run measured in the
same session (absolute times drift with the machine, ratios much less), and test accuracy
(median; runs are seeded, so repeats normally agree).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
CONFIGURATIONS = {
    "default (mlp)": [],
    "model=alexnet": ["model=alexnet"],
    "model=resnet": ["model=resnet"],
    "+experiment=nglite": ["+experiment=nglite"],
    "+experiment=aplite": ["+experiment=aplite"],
    "+experiment=resnet_digits": ["+experiment=resnet_digits"],
}


def run(overrides: list[str], run_dir: Path) -> tuple[float, float]:
    """Seconds and test accuracy of one training run."""
    command = [sys.executable, "train.py", *overrides, "logger=csv", f"hydra.run.dir={run_dir}"]
    started = time.perf_counter()
    subprocess.run(
        command,
        cwd=PROJECT_DIR,
        check=True,
        capture_output=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    seconds = time.perf_counter() - started
    return seconds, json.loads((run_dir / "metrics.json").read_text())["test/acc"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="configuration names to run (default: all)")
    parser.add_argument("overrides", nargs="*", help="added to every run, e.g. trainer.max_epochs=1")
    args = parser.parse_intermixed_args(argv)
    if unknown := set(args.only or []) - set(CONFIGURATIONS):
        parser.error(f"unknown configurations {sorted(unknown)}; choose from {list(CONFIGURATIONS)}")
    chosen = {name: o for name, o in CONFIGURATIONS.items() if not args.only or name in args.only}
    times: dict[str, list[float]] = defaultdict(list)
    accuracies: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):  # interleaved, so drift hits every configuration alike
            for index, (name, overrides) in enumerate(chosen.items()):
                seconds, accuracy = run([*overrides, *args.overrides], Path(scratch, f"{index}-{repeat}"))
                times[name].append(seconds)
                accuracies[name].append(accuracy)
    baseline = statistics.median(next(iter(times.values())))
    print("| command | test accuracy | median time | vs first row |\n|---|---|---|---|")
    for name in chosen:
        seconds, accuracy = statistics.median(times[name]), statistics.median(accuracies[name])
        command = "python train.py" if name.startswith("default") else f"python train.py {name}"
        print(f"| `{command}` | {accuracy:.2%} | {seconds:.1f} s | {seconds / baseline:.2f}x |")
    print(f"\n{args.repeats} runs each, interleaved, on {os.cpu_count()} CPU cores, W&B disabled.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
