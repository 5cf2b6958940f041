"""What `train.py` and `eval.py` offer a user without running a job: `--help` and tab completion.

- `show_help_if_asked(config_name, additions)`: `--help` (or `-h`) with overrides prints the
  config groups and their options (read from configs/), the groups added with `+group=option`
  (experiments), and the config composed with those overrides, then exits. Hydra's own `--help`
  lists the groups through its config loader, which copies the whole config repository for each
  of the ~100 lookups it makes: about twice the time of `--cfg job`. This help composes once.
  With any other Hydra flag (`--config-name`, `--resolve`, ...) `--help` is Hydra's own, as
  `--hydra-help` always is.
- `completion_filtered()`: Hydra's bash completion, without the internal groups.

Internal groups are not user choices: `dataset_model` is picked by `${dataset}_${model}` in
configs/config.yaml, and `hydra` is Hydra's own (`--hydra-help` lists it).
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from .paths import composed_config, config_dir

INTERNAL_GROUPS = ("hydra", "dataset_model")
# A completion word that names an internal group other than `hydra` (whose keys stay offered:
# `hydra.run.dir=...` is a common override): `dataset_model=`, `+dataset_model=x`, ...
HIDDEN_COMPLETION = re.compile(rf"[+~]?(?:{'|'.join(INTERNAL_GROUPS[1:])})(?:[=/.]|$)")


def show_help_if_asked(config_name: str, additions: Sequence[str] = ()) -> None:
    """Print `help_text` and exit if the command line asks for `--help` and no other Hydra flag."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    try:
        args = parser.parse_args(sys.argv[1:])
    except SystemExit:
        return  # Hydra reports it, as it would without this help
    defaults = vars(parser.parse_args([]))
    others = [
        name
        for name, value in vars(args).items()
        if name not in ("help", "overrides") and value != defaults[name]
    ]
    if not args.help or others:
        return
    from .failures import reported

    text = reported(lambda: help_text(config_name, args.overrides, additions))
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `--help | head` stopped reading: no traceback, and none at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    raise SystemExit(0)


def help_text(config_name: str, overrides: Sequence[str], additions: Sequence[str] = ()) -> str:
    """The help of the command whose config is `config_name` and that accepts `+group=option` for
    the groups in `additions` (groups its config's defaults list does not name)."""
    cfg = composed_config(overrides, config_name, return_hydra_config=True)  # hydra: the choices
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    groups = group_options(Path(config_dir()))
    added = {group for group in groups if group in additions}
    chosen = {group: options for group, options in groups.items() if group in choices and group not in added}
    others = sorted(set(groups) - set(chosen) - added)
    command = program()
    return "\n".join(
        [
            f"{command} [group=option ...] [key=value ...]",
            "",
            "== Configuration groups ==",
            "Choose an option with group=option, add a +group with +group=option (* marks the one in use)",
            "",
            *option_lines(chosen, choices),
            *option_lines({group: groups[group] for group in sorted(added)}, choices, prefix="+"),
            *([f"Not used by {command}: {', '.join(others)}"] if others else []),
            "",
            "== Config ==",
            "Override anything in the config (key=value, e.g. seed=1; +key=value adds a key)",
            "",
            OmegaConf.to_yaml(cfg),
            f"{command} --cfg job [overrides]    print the config only",
            f"{command} -m key=a,b [overrides]   a multirun: one job per value",
            f"{command} --hydra-help             Hydra's own flags and groups",
            "Powered by Hydra (https://hydra.cc)",
        ]
    )


def group_options(configs: Path) -> dict[str, list[str]]:
    """Every config group under `configs` but the internal ones, with its options, sorted."""
    groups: dict[str, list[str]] = {}
    for path in sorted(configs.rglob("*.yaml")):
        group = path.parent.relative_to(configs).as_posix()
        if group != "." and group.split("/")[0] not in INTERNAL_GROUPS:
            groups.setdefault(group, []).append(path.stem)
    return dict(sorted(groups.items()))


def option_lines(groups: dict[str, list[str]], choices: dict[str, str | None], prefix: str = "") -> list[str]:
    marked = {
        group: [f"{option}*" if choices.get(group) == option else option for option in options]
        for group, options in groups.items()
    }
    return [f"{prefix}{group}: {', '.join(options)}" for group, options in marked.items()]


def program() -> str:
    """How the user started this command: `python train.py` or the console script's name."""
    name = Path(sys.argv[0]).name
    return f"python {name}" if name.endswith(".py") else name


@contextmanager
def completion_filtered() -> Iterator[None]:
    """Drop the internal groups from the words Hydra's shell completion query prints, keeping
    its layout: bash's words on one line, fish's one per line."""
    args = sys.argv[1:]
    if not ({"-sc", "--shell-completion"} & set(args) and any(arg.startswith("query=") for arg in args)):
        yield
        return
    with redirect_stdout(io.StringIO()) as output:
        yield
    for line in output.getvalue().splitlines():
        words = [word for word in line.split(" ") if not HIDDEN_COMPLETION.match(word)]
        if any(words) or not line:
            print(" ".join(words))
