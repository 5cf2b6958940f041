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

import json
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from common import benchmark_parser, command_seconds, cores, footer, interleaved, markdown_table, median

CORES = cores()
JOBLIB = "hydra/launcher=joblib"
CONFIGURATIONS = {
    "basic launcher": [],
    "joblib n_jobs=2": [JOBLIB, "hydra.launcher.n_jobs=2"],
    f"joblib n_jobs=2, threads={CORES}": [JOBLIB, "hydra.launcher.n_jobs=2", f"threads={CORES}"],
    "joblib n_jobs=4": [JOBLIB, "hydra.launcher.n_jobs=4"],
    f"joblib n_jobs=4, threads={CORES}": [JOBLIB, "hydra.launcher.n_jobs=4", f"threads={CORES}"],
}
# Every job takes its auto share of the threads, or what `threads=` says: not what we were given.
os.environ.pop("OMP_NUM_THREADS", None)


def threads_per_job(overrides: list[str]) -> int:
    """What each job uses: `threads=` if given, else the share utils/threads.py gives it on an
    idle machine."""
    for override in overrides:
        if override.startswith("threads="):
            return int(override.partition("=")[2])
    n_jobs = next((int(o.partition("=")[2]) for o in overrides if o.startswith("hydra.launcher.n_jobs=")), 1)
    return max(CORES // n_jobs, 1)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, repeats=3)
    parser.add_argument("--seeds", type=int, default=4, help="jobs in the sweep (seed=1,...,N)")
    parser.add_argument("--only", nargs="*", help="configuration names to run (default: all)")
    parser.add_argument("overrides", nargs="*", help="added to every job, e.g. trainer.max_epochs=1")
    args = parser.parse_intermixed_args(argv)
    if unknown := set(args.only or []) - set(CONFIGURATIONS):
        parser.error(f"unknown configurations {sorted(unknown)}; choose from {list(CONFIGURATIONS)}")
    chosen = {name: o for name, o in CONFIGURATIONS.items() if not args.only or name in args.only}
    accuracies: dict[str, list[float]] = defaultdict(list)

    def sweep(name: str, scratch: str) -> Callable[[], float]:
        def measure() -> float:
            """Seconds for the whole multirun; its jobs' mean test accuracy goes to `accuracies`."""
            sweep_dir = Path(tempfile.mkdtemp(dir=scratch))
            seeds = ",".join(str(seed) for seed in range(1, args.seeds + 1))
            command = ["train.py", "-m", f"seed={seeds}", *chosen[name], *args.overrides, "logger=csv"]
            seconds = command_seconds([*command, f"hydra.sweep.dir={sweep_dir}"], {"WANDB_MODE": "disabled"})
            accuracies[name].append(
                statistics.mean(
                    json.loads((sweep_dir / str(job) / "metrics.json").read_text())["test/acc"]
                    for job in range(args.seeds)
                )
            )
            return seconds

        return measure

    with tempfile.TemporaryDirectory() as scratch:
        times = interleaved({name: sweep(name, scratch) for name in chosen}, args.repeats)
    baseline = median(next(iter(times.values())))
    rows = [
        [
            name,
            threads_per_job(overrides),
            f"{median(times[name]):.1f} s",
            f"{median(times[name]) / baseline:.2f}x",
            f"{median(accuracies[name]):.2%}",
        ]
        for name, overrides in chosen.items()
    ]
    headers = ["launcher", "threads per job", "median time", "vs first row", "mean test accuracy"]
    print(markdown_table(headers, rows))
    print(f"\n{args.seeds}-job sweeps (`seed=1,...,{args.seeds}`), W&B disabled. {footer(args.repeats)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
