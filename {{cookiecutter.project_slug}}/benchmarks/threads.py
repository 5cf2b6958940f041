"""The default run with 1 thread, with every core, and with the project's auto rule, on an idle
machine and beside other trainings.

    python benchmarks/threads.py [--repeats 3] [--epochs 10] [--others 2] [extra overrides]

Runs `python train.py trainer.max_epochs=<epochs> logger=csv threads=<n>` (W&B out of it) for
each case, `--repeats` times, interleaved: first alone, then with `--others` trainings of the
same model running in the background for the whole busy phase (each with torch's default of one
thread per core, as a training that knows nothing of this project starts; they are stopped by
pid at the end). Prints the median wall time of each case idle and busy, as ratios to 1 thread
idle, and which thread count auto chose. Start it on an otherwise quiet machine: the idle column
is only idle if nothing else runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from common import (
    PROJECT_DIR,
    benchmark_parser,
    command_seconds,
    cores,
    footer,
    interleaved,
    markdown_table,
    median,
)

WANDB_OFF = {"WANDB_MODE": "disabled"}
# OMP_NUM_THREADS would win over the auto rule in every run started here.
os.environ.pop("OMP_NUM_THREADS", None)
CASES = {"1": ["threads=1"], str(cores()): [f"threads={cores()}"], "auto": ["threads=null"]}


@contextmanager
def other_trainings(count: int, scratch: Path) -> Iterator[None]:
    """`count` endless trainings of the default model in the background, already training when
    the block starts; each is stopped by its pid when it ends."""
    processes = []
    for index in range(count):
        run_dir = scratch / f"other-{index}"
        command = [
            sys.executable,
            "train.py",
            "logger=csv",
            f"threads={cores()}",
            "trainer.max_epochs=100000",
            "callbacks.early_stopping=null",
            "test=false",
            f"hydra.run.dir={run_dir}",
        ]
        env = {**os.environ, **WANDB_OFF}
        with (scratch / f"other-{index}.err").open("w") as errors:
            process = subprocess.Popen(
                command, cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=errors
            )
        processes.append((process, run_dir))
    try:
        for process, run_dir in processes:  # training once its first epoch's checkpoint is there
            while not (run_dir / "checkpoints" / "last.ckpt").exists():
                if process.poll() is not None:
                    errors = run_dir.with_suffix(".err").read_text()
                    sys.exit(f"a background training exited with {process.returncode}:\n{errors}")
                time.sleep(0.5)
        yield
    finally:
        for process, _ in processes:
            process.send_signal(signal.SIGINT)
        for process, _ in processes:
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def auto_choice(run_dir: Path) -> str:
    """What auto set in a run, from its record: `<threads> (<why>)`."""
    threads = yaml.safe_load((run_dir / "record" / "environment.yaml").read_text())["threads"]
    return f"{threads['torch']} ({threads['source']})"


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, repeats=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--others", type=int, default=2, help="background trainings in the busy phase")
    parser.add_argument("overrides", nargs="*", help="added to every measured run, e.g. model=resnet")
    args = parser.parse_intermixed_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="threads-benchmark-"))
    runs = iter(range(10**9))
    last_dirs: dict[str, Path] = {}

    def case(name: str, phase: str):
        def measure() -> float:
            run_dir = scratch / f"{phase}-{next(runs)}"
            last_dirs[f"{phase} {name}"] = run_dir
            overrides = [*CASES[name], f"trainer.max_epochs={args.epochs}", "logger=csv", *args.overrides]
            return command_seconds(["train.py", *overrides, f"hydra.run.dir={run_dir}"], WANDB_OFF)

        return measure

    idle = interleaved({name: case(name, "idle") for name in CASES}, args.repeats)
    with other_trainings(args.others, scratch):
        busy = interleaved({name: case(name, "busy") for name in CASES}, args.repeats)
    baseline = median(idle["1"])
    rows = [
        [
            f"threads={name}" if name != "auto" else "auto (`threads: null`)",
            f"{median(idle[name]):.1f} s",
            f"{median(idle[name]) / baseline:.2f}x",
            f"{median(busy[name]):.1f} s",
            f"{median(busy[name]) / baseline:.2f}x",
        ]
        for name in CASES
    ]
    headers = [
        "threads",
        "idle median",
        "idle vs 1 thread",
        f"beside {args.others} trainings",
        "vs 1 thread idle",
    ]
    print(markdown_table(headers, rows))
    command = " ".join(
        ["python train.py", f"trainer.max_epochs={args.epochs}", "logger=csv", *args.overrides]
    )
    print(
        f"\nWall time of `{command} threads=...`. Auto chose {auto_choice(last_dirs['idle auto'])} idle "
        f"and {auto_choice(last_dirs['busy auto'])} busy. The other trainings: the same model, "
        f"threads={cores()} each. {footer(args.repeats)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
