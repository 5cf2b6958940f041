"""Time to the first training step and total wall time of the default `python train.py`,
against the floor of importing torch and Lightning.

    python benchmarks/first_step.py [--repeats 5] [extra overrides for the run]

Runs `python -c "import torch, pytorch_lightning"` and `python train.py` (the default config
and logger, W&B offline, as a user runs it), `--repeats` times, interleaved. The run carries one
more callback, benchmarks/first_step_probe.py, added by a `+callbacks.first_step=...` override,
which writes when the run reaches each phase; the table has the median time from the start of
the command to each phase, and its ratio to the import floor.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import benchmark_parser, command_seconds, footer, interleaved, markdown_table, median

FLOOR = "import torch, pytorch_lightning"
PROBE_DIR = Path(__file__).resolve().parent
# W&B without a login runs offline anyway; set, so a logged-in machine measures the same thing.
ENV = {
    "WANDB_MODE": "offline",
    "PYTHONPATH": os.pathsep.join(filter(None, [str(PROBE_DIR), os.environ.get("PYTHONPATH")])),
}


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, repeats=5)
    parser.add_argument("overrides", nargs="*", help="added to the run, e.g. logger=csv")
    args = parser.parse_intermixed_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="first-step-benchmark-"))
    phases: dict[str, list[float]] = defaultdict(list)

    def train() -> float:
        run_dir = Path(tempfile.mkdtemp(dir=scratch))
        probe = run_dir / "first_step.json"
        started = time.time()
        seconds = command_seconds(
            [
                "train.py",
                *args.overrides,
                f"hydra.run.dir={run_dir}",
                "+callbacks.first_step._target_=first_step_probe.FirstStep",
                f"+callbacks.first_step.path={probe}",
            ],
            ENV,
        )
        for phase, at in json.loads(probe.read_text()).items():
            phases[phase].append(at - started)
        return seconds

    times = interleaved({"floor": lambda: command_seconds(["-c", FLOOR]), "train": train}, args.repeats)
    floor = median(times["floor"])
    rows = [[f'`python -c "{FLOOR}"` (floor)', f"{floor:.2f} s", "1.00x"]]
    rows += [
        [f"`python train.py` to {phase}", f"{median(t):.2f} s", f"{median(t) / floor:.2f}x"]
        for phase, t in phases.items()
    ]
    rows.append(
        [
            "`python train.py` total",
            f"{median(times['train']):.2f} s",
            f"{median(times['train']) / floor:.2f}x",
        ]
    )
    print(markdown_table(["phase", "median", "vs import floor"], rows))
    command = " ".join(["python train.py", *args.overrides])
    print(f"\nTimes from the start of `{command}` (W&B offline). {footer(args.repeats)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
