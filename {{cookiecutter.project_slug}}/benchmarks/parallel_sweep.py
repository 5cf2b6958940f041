"""A 4-job digits sweep with Hydra's basic launcher against the joblib launcher, and what threads
per process do to it.

    python benchmarks/parallel_sweep.py [--repeats 3] [--seeds 4] [extra overrides for every job]

Runs `python train.py -m seed=1,2,3,4 <launcher>` for each configuration (W&B disabled),
`--repeats` times, interleaved, and prints a markdown table: the median wall time of the whole
sweep, its ratio to the basic launcher measured in the same session, and the sweep's mean test
accuracy. `threads=<cores>` is torch's default of one thread per core in every process, which
the project's auto share (`threads: null`) replaces.
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
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
JOBLIB = "hydra/launcher=joblib"
CONFIGURATIONS = {
    "basic launcher": [],
    "joblib n_jobs=2": [JOBLIB, "hydra.launcher.n_jobs=2"],
    f"joblib n_jobs=2, threads={CORES}": [JOBLIB, "hydra.launcher.n_jobs=2", f"threads={CORES}"],
    "joblib n_jobs=4": [JOBLIB, "hydra.launcher.n_jobs=4"],
    f"joblib n_jobs=4, threads={CORES}": [JOBLIB, "hydra.launcher.n_jobs=4", f"threads={CORES}"],
}


def threads_per_job(overrides: list[str]) -> int:
    """What each job uses: `threads=` if given, else the share utils/threads.py gives it."""
    for override in overrides:
        if override.startswith("threads="):
            return int(override.partition("=")[2])
    n_jobs = next((int(o.partition("=")[2]) for o in overrides if o.startswith("hydra.launcher.n_jobs=")), 1)
    return max(CORES // n_jobs, 1)


def sweep(overrides: list[str], seeds: int, sweep_dir: Path) -> tuple[float, float]:
    """Seconds for the whole multirun, and the mean test accuracy of its jobs."""
    command = [
        sys.executable,
        "train.py",
        "-m",
        f"seed={','.join(str(s) for s in range(1, seeds + 1))}",
        *overrides,
        "logger=csv",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    env = {name: value for name, value in os.environ.items() if name != "OMP_NUM_THREADS"}
    started = time.perf_counter()
    subprocess.run(
        command, cwd=PROJECT_DIR, check=True, capture_output=True, env={**env, "WANDB_MODE": "disabled"}
    )
    seconds = time.perf_counter() - started
    accuracies = [
        json.loads((sweep_dir / str(job) / "metrics.json").read_text())["test/acc"] for job in range(seeds)
    ]
    return seconds, statistics.mean(accuracies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=4, help="jobs in the sweep (seed=1,...,N)")
    parser.add_argument("--only", nargs="*", help="configuration names to run (default: all)")
    parser.add_argument("overrides", nargs="*", help="added to every job, e.g. trainer.max_epochs=1")
    args = parser.parse_intermixed_args(argv)
    if unknown := set(args.only or []) - set(CONFIGURATIONS):
        parser.error(f"unknown configurations {sorted(unknown)}; choose from {list(CONFIGURATIONS)}")
    chosen = {name: o for name, o in CONFIGURATIONS.items() if not args.only or name in args.only}
    times: dict[str, list[float]] = defaultdict(list)
    accuracies: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):  # interleaved, so drift hits every configuration alike
            for index, (name, overrides) in enumerate(chosen.items()):
                seconds, accuracy = sweep(
                    [*overrides, *args.overrides], args.seeds, Path(scratch, f"{index}-{repeat}")
                )
                times[name].append(seconds)
                accuracies[name].append(accuracy)
    baseline = statistics.median(next(iter(times.values())))
    print("| launcher | threads per job | median time | vs first row | mean test accuracy |")
    print("|---|---|---|---|---|")
    for name, overrides in chosen.items():
        seconds = statistics.median(times[name])
        print(
            f"| {name} | {threads_per_job(overrides)} | {seconds:.1f} s | {seconds / baseline:.2f}x "
            f"| {statistics.median(accuracies[name]):.2%} |"
        )
    print(
        f"\n{args.seeds}-job sweeps (`seed=1,...,{args.seeds}`), {args.repeats} runs each, interleaved, "
        f"on {CORES} CPU cores, W&B disabled."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
