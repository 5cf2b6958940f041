"""`resume=<run dir>` and `rerun=<run dir>`: the command lines that continue or repeat a run.

Both are read before Hydra sees the command line and become ordinary overrides: the run's own
overrides (from its `.hydra/overrides.yaml`), then the ones given now, which win key by key.
`resume` trains on from `checkpoints/last.ckpt` in the same run dir (so the same W&B run, and
the best checkpoint and early-stopping state carry on); `rerun` starts the same config afresh in
a new run dir. Only overrides are taken from the run dir, never code, since a run dir may come
from anyone: one that names a `_target_` (something to instantiate) is refused unless the command
line gives the same key again (then it is the command line's), and so is any Hydra setting
(Hydra never saves its own there; one could add a config search path or set the environment).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from .errors import ConfigError

RUN_DIR_KEYS = ("resume", "rerun")
# Overrides that belong to one launch, not to the run: never carried over.
LAUNCH_KEYS = ("ckpt_path", "hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir")
UNSAFE_KEY_PARTS = ("_target_", "_args_", "_partial_", "_call_")


def override_key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def saved_overrides(run_dir: Path, given_keys: set[str]) -> list[str]:
    """The overrides `run_dir` was started with, but those of `given_keys` or of LAUNCH_KEYS."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run dir: it has no .hydra/overrides.yaml")
    try:
        overrides = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(overrides, list) or not all(isinstance(item, str) for item in overrides):
        raise ConfigError(f"{path} is not a list of overrides")
    dropped = {*given_keys, *LAUNCH_KEYS}
    kept = [item for item in overrides if override_key(item) not in dropped]
    for key in map(override_key, kept):
        if any(part in key.split(".") for part in UNSAFE_KEY_PARTS):
            raise ConfigError(f"{path} overrides {key}: refusing to instantiate code named by a run dir")
        if key.split(".")[0].split("/")[0] == "hydra":
            raise ConfigError(f"{path} overrides {key}: refusing Hydra settings from a run dir")
    return kept


def run_dir_overrides(args: list[str]) -> list[str]:
    """`args` with `resume=DIR` or `rerun=DIR` replaced by the overrides that continue or repeat DIR."""
    chosen = [arg for arg in args if arg.partition("=")[0] in RUN_DIR_KEYS]
    if not chosen:
        return args
    if len(chosen) > 1:
        raise ConfigError(f"give one of resume=<run dir> or rerun=<run dir>, not {' and '.join(chosen)}")
    key, _, value = chosen[0].partition("=")
    run_dir = Path(value).resolve()
    if warning := code_change_warning(run_dir):
        print(f"warning: {warning}", file=sys.stderr)
    given = [arg for arg in args if arg != chosen[0]]
    given_keys = {override_key(arg) for arg in given if "=" in arg or arg.startswith("~")}
    overrides = saved_overrides(run_dir, given_keys)
    if key == "rerun":
        return [*overrides, *given]
    last = last_checkpoint(run_dir)
    start = [f"ckpt_path={last}"] if last else []
    return [*overrides, *given, f"hydra.run.dir={run_dir}", *start]


def last_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a run in `run_dir` goes on from (`resume`, a requeued job), if it saved one."""
    last = run_dir / "checkpoints" / "last.ckpt"
    return last if last.is_file() else None


def code_change_warning(run_dir: Path) -> str | None:
    """What differs between the code the run recorded (record/environment.yaml) and the code
    now, for `resume` and `rerun` to warn about: results then may differ. None if nothing does."""
    from .paths import code_dir
    from .utils.run_record import ENVIRONMENT_FILE, RECORD_DIR, GitError, git

    try:
        recorded = yaml.safe_load((run_dir / RECORD_DIR / ENVIRONMENT_FILE).read_text())["git"]
        then = recorded["commit"]
        now = git(code_dir(), "rev-parse", "HEAD").decode().strip()
    except (OSError, KeyError, TypeError, yaml.YAMLError, GitError):
        return None  # no record, or no git then or now: nothing to compare
    if then and then != now:
        return f"{run_dir} ran at commit {then[:12]}, the code is now at {now[:12]}: results may differ"
    if recorded.get("dirty"):
        patch = run_dir / RECORD_DIR / recorded.get("patch", "git.diff")
        return f"{run_dir} ran with uncommitted changes ({patch}): results may differ"
    return None
