"""What each shipped configuration reaches on digits, and how long it takes on this machine.

    python benchmarks/digits_models.py [--repeats 3] [extra overrides for every run]

Runs `python train.py <overrides>` for each configuration (W&B disabled), `--repeats` times,
and prints a markdown table: median wall time, its ratio to the default run measured in the
same session (absolute times drift with the machine, ratios much less), and test accuracy
(median; runs are seeded, so repeats normally agree).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from common import benchmark_parser, command_seconds, footer, interleaved, markdown_table, median

CONFIGURATIONS = {
    "default (mlp)": [],
    "model=alexnet": ["model=alexnet"],
    "model=resnet": ["model=resnet"],
    "+experiment=nglite": ["+experiment=nglite"],
    "+experiment=aplite": ["+experiment=aplite"],
    "+experiment=resnet_digits": ["+experiment=resnet_digits"],
}


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, repeats=3)
    parser.add_argument("--only", nargs="*", help="configuration names to run (default: all)")
    parser.add_argument("overrides", nargs="*", help="added to every run, e.g. trainer.max_epochs=1")
    args = parser.parse_intermixed_args(argv)
    if unknown := set(args.only or []) - set(CONFIGURATIONS):
        parser.error(f"unknown configurations {sorted(unknown)}; choose from {list(CONFIGURATIONS)}")
    chosen = {name: o for name, o in CONFIGURATIONS.items() if not args.only or name in args.only}
    accuracies: dict[str, list[float]] = defaultdict(list)

    def run(name: str, scratch: str) -> Callable[[], float]:
        def measure() -> float:
            """Seconds of one training run; its test accuracy goes to `accuracies`."""
            run_dir = Path(tempfile.mkdtemp(dir=scratch))
            command = ["train.py", *chosen[name], *args.overrides, "logger=csv", f"hydra.run.dir={run_dir}"]
            seconds = command_seconds(command, {"WANDB_MODE": "disabled"})
            accuracies[name].append(json.loads((run_dir / "metrics.json").read_text())["test/acc"])
            return seconds

        return measure

    with tempfile.TemporaryDirectory() as scratch:
        times = interleaved({name: run(name, scratch) for name in chosen}, args.repeats)
    baseline = median(next(iter(times.values())))
    rows = []
    for name in chosen:
        seconds, accuracy = median(times[name]), median(accuracies[name])
        command = "python train.py" if name.startswith("default") else f"python train.py {name}"
        rows.append([f"`{command}`", f"{accuracy:.2%}", f"{seconds:.1f} s", f"{seconds / baseline:.2f}x"])
    print(markdown_table(["command", "test accuracy", "median time", "vs first row"], rows))
    print(f"\nW&B disabled. {footer(args.repeats)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
