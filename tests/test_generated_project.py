"""The rendered default project, extended as its README says, installs, passes its own tests
and trains offline."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from xml.etree import ElementTree

import pytest
from conftest import SLICE_TEST, TEMPLATE_DIR, pip, venv_on_this_environment, work_unit
from packaging.requirements import Requirement
from user_extensions import DISCOVERED_TEST_IDS, add_user_extensions

pytestmark = pytest.mark.slow

# The generated suite in slices, each a test and a work unit of its own (conftest.work_unit:
# `make test` runs them on both workers beside the other files) with an upper estimate of its
# seconds on a quiet 2-core machine beside the template's other tests. "rest" is every file the
# others leave out, so a new test file always runs. The guard is five times that: a hang fails
# it, a machine three times slower or busier does not.
SLICES: dict[str, tuple[tuple[str, ...], int]] = {
    "search-sweeps-slurm": (("tests/test_search.py", "tests/test_sweeps.py", "tests/test_slurm.py"), 300),
    "processes": (
        (
            "tests/test_distributed.py",
            "tests/test_fault_tolerance.py",
            "tests/test_parallel_jobs.py",
            "tests/test_checkpoints.py",
        ),
        300,
    ),
    "rest": ((), 300),
}
GUARD = 5
SLICED_FILES = {path for files, _ in SLICES.values() for path in files}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, Path]:
    """The default rendering with a user's dataset, model, experiment and specialization added
    as its README says (user_extensions.py), installed (editable, as `make install` does) into a
    venv of its own on this environment: its own test suite must pass unchanged and test them
    too. The project dir and that venv's python."""
    from cookiecutter.main import cookiecutter

    root = tmp_path_factory.mktemp("e2e")
    path = Path(cookiecutter(str(TEMPLATE_DIR), no_input=True, output_dir=str(root)))
    add_user_extensions(path)
    python = venv_on_this_environment(root / "venv")
    pip("--python", str(python), "install", "--no-build-isolation", "--no-deps", "-e", str(path))
    return path, python


def offline(python: Path) -> dict[str, str]:
    """This environment (OMP_NUM_THREADS=1 from conftest) with W&B offline and the venv's
    console scripts first on PATH."""
    path = f"{python.parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "WANDB_MODE": "offline", "PATH": path}


def run_guarded(command: list[str], cwd: Path, env: dict[str, str], seconds: float) -> tuple[int, str]:
    """Run `command` in a session of its own; past `seconds`, stop the session (the xdist workers
    and trainings it started too, not just pytest) and fail. Returns exit status and output."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        # Ctrl-C first: pytest then tears its fixtures down (the SLURM cluster cancels its jobs,
        # which run outside this session); a kill only if that hangs too.
        os.killpg(process.pid, signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        pytest.fail(f"still running after {seconds:.0f} s:\n{output[-5000:]}")
    return process.returncode, output


def test_dev_requirements_cover_the_generated_dependencies(project):
    meta = tomllib.loads((project[0] / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    generated = meta["dependencies"] + extras["sweeps"] + extras["slurm"] + extras["optuna"]
    generated += extras["wandb"] + extras["tensorboard"] + extras["mlflow"]
    lines = (TEMPLATE_DIR / "requirements-dev.txt").read_text().splitlines()
    listed = {str(Requirement(line)) for line in lines if line.strip() and not line.startswith("#")}
    assert {str(Requirement(dep)) for dep in generated} <= listed


def slice_arguments(name: str) -> list[str]:
    if name != "rest":
        return list(SLICES[name][0])
    return [f"--ignore={path}" for path in sorted(SLICED_FILES)]


def in_slice(test_file: str, name: str) -> bool:
    return test_file in SLICES[name][0] if name != "rest" else test_file not in SLICED_FILES


def passed_tests(junit_xml: Path) -> set[str]:
    """The ids (`tests/test_x.py::test_y[param]`) of the tests that passed, from pytest's JUnit XML."""
    cases = ElementTree.parse(junit_xml).iter("testcase")
    return {
        f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        for case in cases
        if not any(child.tag in ("failure", "error", "skipped") for child in case)
    }


@pytest.mark.parametrize("name", SLICES)
def test_generated_test_suite_passes(project, name, tmp_path):
    path, python = project
    junit_xml = tmp_path / "junit.xml"
    # Two processes a slice even beside the template's other worker: a slice's tail, or a test
    # waiting on a signal or on SLURM, then leaves no core idle (with one process a slice, one
    # worker ran two slices back to back while the other sat idle for minutes).
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=15"]
    status, output = run_guarded(
        [*command, "-n", "2", "--dist", "loadfile", f"--junitxml={junit_xml}", *slice_arguments(name)],
        cwd=path,
        env={**offline(python), "REQUIRE_SLURM": "1"},  # the SLURM tests fail, not skip (.ci/run installs it)
        seconds=GUARD * SLICES[name][1],
    )
    assert status == 0, output[-5000:]
    summary = output.strip().splitlines()[-1]  # e.g. "65 passed, 9 warnings in 215.36s"
    counts = {
        word: int(number) for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", summary)
    }
    assert counts.get("passed", 0) >= 20 and set(counts) == {"passed"}, summary
    # The user's dataset, model, experiment and specialization were found: their cases ran.
    discovered = {test_id for test_id in DISCOVERED_TEST_IDS if in_slice(test_id.partition("::")[0], name)}
    assert discovered <= passed_tests(junit_xml), discovered - passed_tests(junit_xml)
    print(output[output.find("slowest 15 durations") - 30 :])  # -rP shows where the time went


def test_make_test_hands_each_slice_to_a_worker_alone_and_every_other_file_whole(request):
    """What lets `make test` spread the slices yet build a file's fixtures once (conftest)."""
    slice_ids = [f"{SLICE_TEST}{name}]" for name in SLICES]
    assert [work_unit(nodeid) for nodeid in slice_ids] == slice_ids
    units = {item.nodeid: work_unit(item.nodeid) for item in request.session.items}
    slices = [nodeid for nodeid in units if nodeid in slice_ids]
    assert all(unit == nodeid.partition("::")[0] for nodeid, unit in units.items() if nodeid not in slices)
    assert list(units)[: len(slices)] == slices  # first in line


def test_default_training_writes_metrics_and_checkpoints(project):
    path, python = project
    result = subprocess.run(
        [str(python), "train.py"], cwd=path, env=offline(python), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-5000:]
    (run_dir,) = (path / "logs" / "runs").glob("*/*")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/acc"] >= 0.97
    assert {"best.ckpt", "last.ckpt"} <= {path.name for path in (run_dir / "checkpoints").iterdir()}
    assert {"config.yaml", "hydra.yaml", "overrides.yaml"} <= {p.name for p in (run_dir / ".hydra").iterdir()}
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    log = (run_dir / "train.log").read_text()
    # The trainings the tests start share the cores: one torch thread each (conftest).
    assert "Config:" in log and "Threads: 1 (OMP_NUM_THREADS=1)" in log


def test_installed_wheel_finds_its_configs(project, tmp_path):
    path = project[0]
    pip("wheel", "--no-build-isolation", "--no-deps", "--wheel-dir", str(tmp_path / "dist"), str(path))
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
        env={**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(tmp_path / "site")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(tmp_path / "site" / "my_ml_project" / "configs")
    assert "my_ml_project.data.digits.DigitsDataModule" in result.stdout
