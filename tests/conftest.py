"""Shared answers and helpers for rendering the template in tests."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

TEMPLATE_DIR = Path(__file__).resolve().parents[1]

# Every process the tests start inherits this: generated suites and trainings run beside each
# other on few cores, where torch's default of a thread per core only spin-waits (each worker of
# pytest -n imports this conftest too). A value you set yourself is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Named answer sets: each must render into a valid, working project.
ANSWER_SETS: dict[str, dict[str, str]] = {
    "defaults": {},
    "quotes-unicode-emoji": {
        "project_name": 'Zoë\'s "Ünïcode" Net 🚀 \\ 東京',
        "description": 'Says "hi" \\ it\'s ✓ naïve: yes # not a comment, {braces} & <tags> 🎉',
        "author_name": 'O\'Brien "Jo" 山田',
        "author_email": "zoe@bücher.de",  # a non-ASCII local part cannot go into package metadata
    },
    "explicit-names": {
        "project_name": "Vision Lab",
        "project_slug": "vision.lab-2",
        "package_name": "vision_lab",
        "python_version": "3.12",
        "wandb_entity": "my-team",
        "wandb_project": "vision lab (v2)",
    },
    "leading-digit-no-email": {"project_name": "3D Vision", "author_email": ""},
}


def jinja_left_in(text: str) -> bool:
    """Whether template markup survived rendering. `${{ ... }}` is GitHub Actions' own
    expression syntax (the CI workflow), not Jinja."""
    text = text.replace("${" + "{", "")
    return any(marker in text for marker in ("{" + "{", "{" + "%"))


def load_hook(name: str) -> ModuleType:
    """Import hooks/<name>.py as a module (it is valid Python unrendered)."""
    spec = importlib.util.spec_from_file_location(name, TEMPLATE_DIR / "hooks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cookiecutter(
    output_dir: Path, *answers: str, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """The cookiecutter command line as a user runs it, never prompting."""
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(output_dir), *extra]
    return subprocess.run(
        [*command, str(TEMPLATE_DIR), *answers],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def pip(*args: str) -> None:
    """`pip <args>` with the running interpreter's pip, quietly; fails the test on an error."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def venv_on_this_environment(venv: Path) -> Path:
    """A venv for one rendered package (its python returned): empty but for a .pth file naming
    this environment's site-packages, so torch, Lightning and the rest are found without being
    installed again (0.2 s a venv), and renders that share a package name cannot clash."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python*/site-packages")
    (site / "shared_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin" / "python"


# The generated project's own suite, in slices (test_generated_project.SLICES).
SLICE_TEST = "tests/test_generated_project.py::test_generated_test_suite_passes["


def is_slice(nodeid: str) -> bool:
    return nodeid.startswith(SLICE_TEST)


def work_unit(nodeid: str) -> str:
    """What `make test` hands an xdist worker whole: a test file, so its module fixtures (renders,
    installs) are built once; each slice of the generated suite is a unit of its own."""
    return nodeid if is_slice(nodeid) else nodeid.partition("::")[0]


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Units by `work_unit`, in collection order. Not `--dist loadgroup` with xdist_group marks:
    with pytest 9.2, pytest-xdist 3.8 loses them and spreads a file's tests over both workers,
    building its fixtures twice (pytest-dev/pytest-xdist#1386)."""
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the order below, not the largest file first
    return WorkUnitScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slices first: the longest units start at once, the short files fill the end."""
    items.sort(key=lambda item: not is_slice(item.nodeid))
