"""The rendered default project, extended as its README says, installs, passes its own tests
and trains offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import TEMPLATE_DIR
from packaging.requirements import Requirement
from user_extensions import DISCOVERED_TEST_IDS, add_user_extensions

pytestmark = pytest.mark.slow

OFFLINE = {**os.environ, "WANDB_MODE": "offline"}


def pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        check=True,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The default rendering with a user's dataset, model, experiment and specialization added
    as its README says (user_extensions.py), installed (editable) into this environment for the
    module: its own test suite must pass unchanged and test them too."""
    from cookiecutter.main import cookiecutter

    path = Path(
        cookiecutter(str(TEMPLATE_DIR), no_input=True, output_dir=str(tmp_path_factory.mktemp("e2e")))
    )
    add_user_extensions(path)
    pip("install", "--no-build-isolation", "--no-deps", "-e", str(path))
    yield path
    pip("uninstall", "--yes", path.name)


def test_dev_requirements_cover_the_generated_dependencies(project):
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    generated = meta["dependencies"] + extras["sweeps"] + extras["slurm"] + extras["optuna"]
    generated += extras["wandb"] + extras["tensorboard"] + extras["mlflow"]
    lines = (TEMPLATE_DIR / "requirements-dev.txt").read_text().splitlines()
    listed = {str(Requirement(line)) for line in lines if line.strip() and not line.startswith("#")}
    assert {str(Requirement(dep)) for dep in generated} <= listed


def test_generated_test_suite_finds_the_user_extensions(project):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=OFFLINE,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert set(DISCOVERED_TEST_IDS) <= set(result.stdout.splitlines())


def test_generated_test_suite_passes(project):
    result = subprocess.run(
        # Two workers, one per core here; a test file stays on one worker (its module fixtures,
        # the SLURM cluster, are started once).
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile"],
        cwd=project,
        env={**OFFLINE, "REQUIRE_SLURM": "1"},  # the SLURM tests fail rather than skip (.ci/run installs it)
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-5000:]
    summary = result.stdout.strip().splitlines()[-1]  # e.g. "65 passed, 9 warnings in 215.36s"
    counts = {
        word: int(number) for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", summary)
    }
    assert counts.get("passed", 0) >= 60 and set(counts) == {"passed"}, summary


def test_default_training_writes_metrics_and_checkpoints(project):
    result = subprocess.run(
        [sys.executable, "train.py"], cwd=project, env=OFFLINE, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-5000:]
    (run_dir,) = (project / "logs" / "runs").glob("*/*")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/acc"] >= 0.97
    assert {"best.ckpt", "last.ckpt"} <= {path.name for path in (run_dir / "checkpoints").iterdir()}
    assert {"config.yaml", "hydra.yaml", "overrides.yaml"} <= {p.name for p in (run_dir / ".hydra").iterdir()}
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert "Config:" in (run_dir / "train.log").read_text()


def test_installed_wheel_finds_its_configs(project, tmp_path):
    pip("wheel", "--no-build-isolation", "--no-deps", "--wheel-dir", str(tmp_path / "dist"), str(project))
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    pip("install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import sys; from my_ml_project.paths import config_dir; print(config_dir());"
        "from my_ml_project.cli import train; sys.argv = ['train', '--cfg', 'job']; train()"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env={**OFFLINE, "PYTHONPATH": str(tmp_path / "site")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(tmp_path / "site" / "my_ml_project" / "configs")
    assert "my_ml_project.data.digits.DigitsDataModule" in result.stdout
