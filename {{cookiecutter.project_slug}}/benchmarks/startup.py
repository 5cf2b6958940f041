"""How long the commands that run no job take, next to the floor: importing Hydra.

    python benchmarks/startup.py [--repeats 7]

Runs each command `--repeats` times, interleaved, in a fresh interpreter from the project dir as
a user would, and prints a markdown table: median wall time and its ratio to
`python -c "from hydra import main"`. The completion rows run Hydra's bash query with COMP_LINE
and COMP_POINT set as bash sets them when Tab is pressed after the line shown. The
`minimal Hydra app` rows are a one-file app with a one-key config (written to a temp dir): what
Hydra itself takes for `--cfg job` and `--help`, below which this project cannot go.
"""

from __future__ import annotations

import sys
import tempfile
from functools import partial
from pathlib import Path

from common import benchmark_parser, command_seconds, footer, interleaved, time_table

MINIMAL_APP = """\
import hydra


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg):
    pass


main()
"""


def completion(line: str) -> tuple[list[str], dict[str, str]]:
    """`python train.py -sc query=bash` as Hydra's bash completion function runs it for `line`."""
    return ["train.py", "-sc", "query=bash"], {"COMP_LINE": line, "COMP_POINT": str(len(line))}


def commands(minimal_app: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Name -> (python arguments, environment); the first is the baseline."""
    return {
        '`python -c "from hydra import main"` (floor)': (["-c", "from hydra import main"], {}),
        "minimal Hydra app `--cfg job`": ([str(minimal_app), "--cfg", "job"], {}),
        "minimal Hydra app `--help`": ([str(minimal_app), "--help"], {}),
        "`python train.py --cfg job`": (["train.py", "--cfg", "job"], {}),
        "`python train.py --help`": (["train.py", "--help"], {}),
        "`python train.py model=resnet --help`": (["train.py", "model=resnet", "--help"], {}),
        "completion of `python train.py dataset=`": completion("python train.py dataset="),
        "completion of `python train.py model.`": completion("python train.py model."),
    }


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, repeats=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "config.yaml").write_text("key: 1\n")
        (Path(scratch) / "app.py").write_text(MINIMAL_APP)
        cases = {
            name: partial(command_seconds, command, env)
            for name, (command, env) in commands(Path(scratch) / "app.py").items()
        }
        times = interleaved(cases, args.repeats)
    print(time_table(times, baseline=next(iter(times)), ratio_header="vs floor"))
    print(f"\n{footer(args.repeats)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
