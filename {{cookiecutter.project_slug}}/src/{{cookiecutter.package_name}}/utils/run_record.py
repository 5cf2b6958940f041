"""The reproducibility record: what a run dir needs to be re-run, written before any training.

    record/config.yaml       the config as the job used it, every ${...} resolved to a plain value
    record/environment.yaml  Python, platform, package versions, and the git state of the code
    record/git.diff          `git diff HEAD --binary` when the code differed from the commit
    record/resume-<n>/       the same three, for each `resume=<run dir>` of the run

The command-line overrides are Hydra's `.hydra/overrides.yaml`, next to it. Git trouble (no
git, not a repo, no commit yet) is recorded in environment.yaml, never fatal to the run.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from ..paths import code_dir

RECORD_DIR = "record"
CONFIG_FILE = "config.yaml"
ENVIRONMENT_FILE = "environment.yaml"
PATCH_FILE = "git.diff"

PACKAGES = (
    "{{ cookiecutter.project_slug }}",
    "torch",
    "pytorch-lightning",
    "torchmetrics",
    "hydra-core",
    "omegaconf",
    "wandb",
    "tensorboard",
    "mlflow-skinny",
    "numpy",
    "scikit-learn",
)
# Environment variables that change what a run does or where: which GPUs it saw, its threads,
# the W&B sweep and run an agent started it for.
RECORDED_VARIABLES = ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "WANDB_SWEEP_ID", "WANDB_RUN_ID")
# More untracked files than this are counted, not listed.
MAX_UNTRACKED_LISTED = 100
GIT_TIMEOUT_SECONDS = 60


def write_run_record(cfg: DictConfig, out_dir: Path, threads: dict[str, Any] | None = None) -> Path:
    """Write record/ into `out_dir` and return its path. A run resumed in its own dir keeps the
    record of its start and adds record/resume-<n>/ for each resume (the code may have changed).
    `threads` is what `utils.threads.use_thread_share` set."""
    record_dir = out_dir / RECORD_DIR
    if (record_dir / ENVIRONMENT_FILE).exists():
        record_dir /= f"resume-{len(list(record_dir.glob('resume-*'))) + 1}"
    record_dir.mkdir(parents=True, exist_ok=True)
    (record_dir / CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg, resolve=True))
    environment = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "packages": package_versions(),
        "cuda": cuda_version(),
        "threads": threads,
        "variables": {name: os.environ.get(name) for name in RECORDED_VARIABLES},
        "git": git_state(code_dir(), record_dir / PATCH_FILE),
    }
    (record_dir / ENVIRONMENT_FILE).write_text(yaml.safe_dump(environment, sort_keys=False))
    return record_dir


def package_versions() -> dict[str, str | None]:
    """Installed versions from importlib.metadata; None for a package that is not installed."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cuda_version() -> str | None:
    """The CUDA version torch was built with (None for a CPU build), without initialising CUDA."""
    torch = sys.modules.get("torch")
    return torch.version.cuda if torch is not None else None


def git_state(directory: Path, patch_path: Path) -> dict[str, Any]:
    """The commit, dirtiness and untracked files of the repo holding `directory`; the diff
    against HEAD goes to `patch_path` when the tree is dirty. Problems become an `error` entry.

    Two git calls for a clean tree, three for a dirty one; `status` skips ignored dirs
    (logs/, data/) and takes no index lock, so a run never blocks a concurrent git command."""
    try:
        top_level, commit = git(directory, "rev-parse", "--show-toplevel", "HEAD").decode().split()
        changed, untracked = parse_status(git(directory, "status", "--porcelain=v1", "-z"))
    except GitError as error:
        return {"commit": None, "dirty": None, "error": str(error)}
    state: dict[str, Any] = {"repository": top_level, "commit": commit, "dirty": bool(changed)}
    if changed:
        try:
            patch_path.write_bytes(git(directory, "diff", "HEAD", "--binary"))
            state["patch"] = patch_path.name
        except GitError as error:
            state["patch_error"] = str(error)
    state["untracked"] = untracked[:MAX_UNTRACKED_LISTED]
    if len(untracked) > MAX_UNTRACKED_LISTED:
        state["untracked_count"] = len(untracked)
    return state


def parse_status(output: bytes) -> tuple[list[str], list[str]]:
    """Changed and untracked paths from `git status --porcelain=v1 -z`: entries "XY path",
    a rename or copy followed by one more entry, its old path."""
    changed, untracked = [], []
    entries = iter(output.decode(errors="replace").split("\0"))
    for entry in entries:
        status, path = entry[:2], entry[3:]
        if status == "??":
            untracked.append(path)
        elif entry:
            changed.append(path)
            if "R" in status or "C" in status:
                next(entries, None)
    return changed, untracked


class GitError(Exception):
    pass


def git(directory: Path, *args: str) -> bytes:
    """Run `git -C directory args`; GitError with one readable line if it cannot."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        result = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            env=env,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed (not on PATH)") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took over {GIT_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(message[0] if message else f"git {args[0]} exited with {result.returncode}")
    return result.stdout
