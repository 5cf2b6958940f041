"""Every named answer set and option combination builds a wheel that installs and runs.

All renders are built at once, in threads, by one module fixture: each is rendered with the
cookiecutter command line, built into a wheel with pip (no build isolation: hatchling is
already here) and installed from that wheel with `pip install --no-deps` into a venv of its
own. Each venv is empty but for a .pth file naming this environment's site-packages, so torch,
Lightning and the rest are found without being installed again (0.2 s a venv), while the
rendered package is imported from the wheel's files only (not from src/), its console scripts
are pip's, and renders that share a package name cannot clash. A representative subset then
runs the quick tier of its own test suite (QUICK_TIER) with that venv's Python; the default
combination runs its full suite in test_generated_project.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.parser import Parser
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from zipfile import ZipFile

import pytest
from combinations import COMBINATIONS
from conftest import ANSWER_SETS, TEMPLATE_DIR, pip, run_cookiecutter, venv_on_this_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from test_free_text import HARD_ANSWERS

pytestmark = pytest.mark.slow

RENDERS: dict[str, dict[str, object]] = {
    **{f"answers-{name}": answers for name, answers in ANSWER_SETS.items()},
    **{f"combination-{name}": answers for name, answers in COMBINATIONS.items() if name != "default"},
    **{f"free-text-{name}": answers for name, answers in HARD_ANSWERS.items()},
}
# Together these choose every value of every option (checked below); "default" runs its full
# suite in test_generated_project.py.
SUITE_RUNS = ("minimal", "tensorboard-bsd", "mlflow-no-ci", "everything")
# Steps run once after rendering, not content of the project: a suite has nothing to test there.
FIRST_TIME_STEPS = {"git_init"}
# Two cores: more parallel renders or suites only queue for them.
WORKERS = 2
# The quick tier of a generated suite: every config composes (what the options prune), the
# README's tables match the configs, a short training with the chosen logger, and the CLI. The
# options change configs, docs, packaging and which optional modules exist (SLURM, Optuna), not
# the code of the rest, so its own tests (W&B's, the multi-process files) run once, in the
# default's full suite.
QUICK_TIER = (
    "tests/test_configs.py",
    "tests/test_readme.py",
    "tests/test_training.py",
)
# Left out: trainings in fresh interpreters (about a minute each on a busy 2-core machine), and
# trainings of the loop itself (resume, per-step logging, progress bar, loading a checkpoint, the
# four loggers in one run: every render has all four logger configs). None depends on an option;
# the default rendering's full suite runs them.
QUICK_SKIP = " and ".join(
    f"not {name}"
    for name in (
        *("benchmark", "multirun", "train_then_eval", "without_login", "needs_no_wandb"),
        *("logs_the_loss", "resume", "progress_bar", "loads_without_hydra", "holds"),
    )
)


@dataclass(frozen=True)
class Installed:
    project: Path
    venv: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    @property
    def site(self) -> Path:
        return next((self.venv / "lib").glob("python*/site-packages"))

    @property
    def meta(self) -> dict:
        return tomllib.loads((self.project / "pyproject.toml").read_text())["project"]

    @property
    def package(self) -> str:
        return next(p.name for p in (self.project / "src").iterdir() if p.name != "hydra_plugins")

    def env(self) -> dict[str, str]:
        path = f"{self.venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
        return {**os.environ, "PATH": path, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}

    def run(self, *command: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout
        )


def render_and_install(root: Path, answers: dict[str, object]) -> Installed:
    result = run_cookiecutter(root / "out", *(f"{key}={value}" for key, value in answers.items()))
    assert result.returncode == 0, result.stderr[-3000:]
    (project,) = (root / "out").iterdir()
    # Only this Python has torch & co. installed: a render asking for a newer one (python_version)
    # is built and installed here anyway; its Requires-Python is checked in the metadata instead.
    requires = SpecifierSet(
        tomllib.loads((project / "pyproject.toml").read_text())["project"]["requires-python"]
    )
    here = ".".join(map(str, sys.version_info[:3]))
    force = () if requires.contains(here) else ("--ignore-requires-python",)
    pip("wheel", *force, "--no-build-isolation", "--no-deps", "--wheel-dir", str(root / "dist"), str(project))
    (wheel,) = (root / "dist").glob("*.whl")
    venv = root / "venv"
    venv_on_this_environment(venv)
    installed = Installed(project, venv)
    pip("--python", installed.python, "install", *force, "--no-deps", str(wheel))
    return installed


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Installed]:
    roots = {name: tmp_path_factory.mktemp(name) for name in RENDERS}
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {name: pool.submit(render_and_install, roots[name], RENDERS[name]) for name in RENDERS}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def quick_suites(installed) -> dict[str, subprocess.CompletedProcess[str]]:
    """The quick tier of each representative combination's own suite, run against its wheel."""

    def run_suite(name: str) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        result = run_files(name)
        result.stdout += f"\n{name}: quick tier took {time.monotonic() - start:.0f} s wall\n"
        return result

    def run_files(name: str) -> subprocess.CompletedProcess[str]:
        render = installed[f"combination-{name}"]
        files = [f for f in QUICK_TIER if (render.project / f).exists()]
        options = ("-q", "-p", "no:cacheprovider", "-m", "not slow", "-k", QUICK_SKIP)
        return render.run(render.python, "-m", "pytest", *options, *files, cwd=render.project, timeout=900)

    with ThreadPoolExecutor(WORKERS) as pool:
        return dict(zip(SUITE_RUNS, pool.map(run_suite, SUITE_RUNS), strict=True))


@pytest.mark.parametrize("name", RENDERS)
def test_wheel_installs_the_package_with_its_configs_and_launcher(installed, name):
    render = installed[name]
    assert (render.site / render.package / "configs" / "config.yaml").is_file()
    assert (render.site / "hydra_plugins" / f"{render.package}_launcher.py").is_file()
    dist_info = next(render.site.glob("*.dist-info"))
    metadata = Parser().parsestr((dist_info / "METADATA").read_text())
    assert metadata["Name"] == render.meta["name"]
    assert metadata["Summary"] == render.meta["description"]
    python = RENDERS[name].get("python_version", "3.10")
    assert metadata["Requires-Python"] == f">={python}"


@pytest.mark.parametrize("name", RENDERS)
def test_installed_console_script_composes_its_config_from_another_dir(installed, name, tmp_path):
    render = installed[name]
    script = render.venv / "bin" / f"{render.meta['name']}-train"
    result = render.run(str(script), "+experiment=aplite", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"_target_: {render.package}.models.alexnet.AlexNet" in result.stdout
    help_text = render.run(str(script), "--help", cwd=tmp_path)
    assert help_text.returncode == 0, help_text.stderr[-3000:]
    assert "== Configuration groups ==" in help_text.stdout


@pytest.mark.parametrize("name", RENDERS)
def test_wheel_dependencies_are_satisfied_by_this_environment(installed, name):
    # --no-deps skipped pip's resolver: check each requirement of the wheel itself here instead.
    (wheel,) = installed[name].venv.parent.glob("dist/*.whl")
    with ZipFile(wheel) as archive:
        (metadata_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    unmet = []
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's requirement: installed only when asked for
        try:
            found = version(requirement.name)
        except PackageNotFoundError:
            found = None
        if found is None or not requirement.specifier.contains(found, prereleases=True):
            unmet.append(f"{requirement} (found {found})")
    assert unmet == []


def test_suite_runs_cover_every_value_of_every_option():
    choices = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
    chosen = [{**defaults_of(choices), **COMBINATIONS[name]} for name in SUITE_RUNS]
    for key, value in choices.items():
        if key in FIRST_TIME_STEPS or key.startswith("_"):
            continue
        if isinstance(value, list):
            assert {c[key] for c in chosen} == set(value), key
        elif isinstance(value, bool):
            assert {c[key] for c in chosen} == {True, False}, key


def defaults_of(choices: dict[str, object]) -> dict[str, object]:
    return {key: value[0] if isinstance(value, list) else value for key, value in choices.items()}


@pytest.mark.parametrize("name", SUITE_RUNS)
def test_quick_tier_of_the_generated_suite_passes_against_the_wheel(quick_suites, name):
    result = quick_suites[name]
    assert result.returncode == 0, result.stdout[-5000:]
    summary, took = [line for line in result.stdout.splitlines() if line.strip()][-2:]
    assert " passed" in summary and "failed" not in summary, summary
    print(took)  # shown with -rP: the closing note lists these wall times
