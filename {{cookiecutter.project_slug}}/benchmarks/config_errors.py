"""How long a config error takes to report, next to `python train.py --cfg job`.

    python benchmarks/config_errors.py [--repeats 7]

Runs each command `--repeats` times, interleaved, in a fresh interpreter as a user would, and
prints a markdown table: median wall time and its ratio to `--cfg job` (which composes the
config and prints it, importing neither torch nor Lightning). A bad value is reported before
any heavy import, so the ratio stays close to 1.
"""

from __future__ import annotations

import sys
import tempfile
from functools import partial
from pathlib import Path

from common import benchmark_parser, command_seconds, footer, interleaved, time_table

COMMANDS = {
    "--cfg job": ["--cfg", "job"],
    "dataset.batch_size=0": ["dataset.batch_size=0"],
    "optimizer.lr=abc": ["optimizer.lr=abc"],
    "model=alexnett": ["model=alexnett"],
}


def seconds_of(args: list[str], run_dir: Path, expected_status: int) -> float:
    command = ["train.py", *args, f"hydra.run.dir={run_dir}"]
    return command_seconds(command, {"WANDB_MODE": "disabled"}, expected_status)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, repeats=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        cases = {
            name: partial(seconds_of, command, Path(scratch, "run"), 0 if name == "--cfg job" else 2)
            for name, command in COMMANDS.items()
        }
        times = interleaved(cases, args.repeats)
    table = time_table(
        times, "--cfg job", "vs `--cfg job`", label=lambda name: f"`python train.py {name}`", decimals=2
    )
    print(table)
    print(f"\n{footer(args.repeats)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
