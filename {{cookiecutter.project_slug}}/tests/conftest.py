"""Compose configs the way train.py does, with run outputs in a temporary dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from {{ cookiecutter.package_name }}.paths import config_dir

# Tiny models on shared cores: more intra-op threads only spin-wait. Set before torch is
# imported, here and (inherited) in every subprocess the tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")

PROJECT_DIR = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(config_dir())


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


DATASETS, MODELS, EXPERIMENTS = options("dataset"), options("model"), options("experiment")
# The `logger` option in configs/config.yaml's defaults; tests of another logger name theirs.
DEFAULT_LOGGER = next(
    entry.logger for entry in OmegaConf.load(CONFIG_DIR / "config.yaml").defaults if "logger" in entry
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Iterator[Path]:
    """Every downloadable dataset as fake_data writes it, and checksums that match it."""
    from fake_data import expect_checksums_of, write_all  # imports torch: not before OMP_NUM_THREADS

    with pytest.MonkeyPatch.context() as monkeypatch:
        yield expect_checksums_of(write_all(tmp_path_factory.mktemp("data")), monkeypatch)


@pytest.fixture
def compose_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """Return `compose(*overrides, config_name=..., run_dir=...)`: a job config as train.py would
    see it, with its own fresh run dir on every call unless `run_dir` names one."""

    def _compose(*overrides: str, config_name: str = "config", run_dir: str | None = None) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(
                config_name, overrides=[f"paths.root_dir={tmp_path}", *overrides], return_hydra_config=True
            )
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = run_dir or tempfile.mkdtemp(prefix="run-", dir=tmp_path)
            HydraConfig.instance().set_config(cfg)
            del cfg.hydra
        return cfg

    return _compose


@pytest.fixture
def machine_gpus(monkeypatch) -> Callable[..., None]:
    """Return `machine_gpus(cuda=0, mps=False)`: torch then reports that many CUDA GPUs, and an
    Apple GPU or none, whatever this machine has."""
    import torch

    def _machine_gpus(cuda: int = 0, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return _machine_gpus


def run_script(
    *args: str, cwd: Path, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python <args>` in a fresh interpreter, as a user would; env values of None are unset."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=script_env(env), capture_output=True, text=True, timeout=600
    )


def with_tests_on_path(env: dict[str, str]) -> dict[str, str]:
    """`env` with tests/ on PYTHONPATH: for runs and their children that load kill_switch."""
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_DIR / "tests"), env.get("PYTHONPATH")])),
    }


def imported_by(result: subprocess.CompletedProcess[str]) -> tuple[str, set[str]]:
    """The stderr of a `python -X importtime ...` run without the import lines, and the modules
    that run imported (its children's imports are their own)."""
    lines = result.stderr.splitlines()
    modules = {line.rpartition("|")[2].strip() for line in lines if line.startswith("import time:")}
    return "\n".join(line for line in lines if not line.startswith("import time:")), modules


def script_env(env: dict[str, str | None] | None = None) -> dict[str, str]:
    """This environment with W&B offline, updated by `env` (values of None are unset)."""
    merged = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    return {name: value for name, value in merged.items() if value is not None}


def start_runner(*args: str, env: dict[str, str | None] | None = None) -> subprocess.Popen[str]:
    """`python <args>` in the project dir, in the background with its output piped, and Ctrl-C
    handled as in an interactive shell even when the tests run as a background job (which
    starts with SIGINT ignored, and the runners keep a signal ignored on purpose so)."""

    def as_in_a_terminal() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(
        [sys.executable, *args],
        cwd=PROJECT_DIR,
        env=script_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )


def train_cli(run_dir: Path, *overrides: str, env: dict[str, str | None] | None = None) -> Path:
    """`python train.py <overrides>` into `run_dir`, which it returns; fails the test if it fails."""
    result = run_script("train.py", *overrides, f"hydra.run.dir={run_dir}", cwd=PROJECT_DIR, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir
