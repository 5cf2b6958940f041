"""Turn what `wandb agent` puts on the command line into Hydra overrides.

The agent writes each sweep parameter as `name=value` (the `${args_no_hyphens}` macro). Two
things about that form do not fit Hydra 1.3:

- `experiment` is not in the defaults list (so that `python train.py +experiment=aplite` works
  as documented), and Hydra then requires the `+`; W&B's sweep schema rejects `+` in
  parameter names. So `experiment=X` becomes `+experiment=X`.
- The agent writes Python's None as the string `None`. `key=None` becomes `key=null`, and
  `experiment=None` means no experiment at all (a baseline in a sweep over experiments).
- Hydra 1.3 removes a group with `~group` and rejects `group=null` (e.g. `logger=null`), which
  people and the agent write too: `group=null` becomes `~group`.

Everything else passes through untouched, so hand-written commands behave exactly as in Hydra.
"""

from __future__ import annotations

from pathlib import Path

from .paths import config_dir

# Config groups that are selected with `+group=option` because they are not in the defaults list.
APPEND_ONLY_GROUPS = ("experiment",)


def is_group(key: str) -> bool:
    """Whether `key` names a config group (a folder of options in configs/)."""
    return key.isidentifier() and (Path(config_dir()) / key).is_dir()


def hydra_overrides(args: list[str]) -> list[str]:
    overrides = []
    for arg in args:
        key, equals, value = arg.partition("=")
        if not equals or arg.startswith("-"):
            overrides.append(arg)
            continue
        if value == "None":
            value = "null"
        if key in APPEND_ONLY_GROUPS:
            if value == "null":
                continue
            key = f"+{key}"
        elif value == "null" and is_group(key):
            overrides.append(f"~{key}")
            continue
        overrides.append(f"{key}={value}")
    return overrides
