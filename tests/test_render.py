"""Rendering with defaults and awkward answers gives a complete, valid project."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import yaml
from combinations import COMBINATIONS
from conftest import ANSWER_SETS, TEMPLATE_DIR, jinja_left_in

EXPECTED_FILES = {
    ".gitignore",
    ".env.example",
    ".pre-commit-config.yaml",
    "Makefile",
    "sweep.yaml",
    "sweeps/experiments.yaml",
    "sweeps/bayes.yaml",
    "README.md",
    "pyproject.toml",
    "train.py",
    "eval.py",
    "benchmarks/digits_models.py",
    "benchmarks/config_errors.py",
    "benchmarks/parallel_sweep.py",
    "benchmarks/common.py",
    "benchmarks/startup.py",
    "benchmarks/training_loop.py",
    "configs/config.yaml",
    "configs/eval.yaml",
    "configs/dataset/digits.yaml",
    "configs/dataset/cifar10.yaml",
    "configs/dataset/mnist.yaml",
    "configs/dataset/image_folder.yaml",
    "configs/model/mlp.yaml",
    "configs/model/alexnet.yaml",
    "configs/model/resnet.yaml",
    "configs/dataset_model/cifar10_alexnet.yaml",
    "configs/dataset_model/digits_resnet.yaml",
    "configs/dataset_model/mnist_resnet.yaml",
    "configs/experiment/aplite.yaml",
    "configs/experiment/nglite.yaml",
    "configs/experiment/resnet_digits.yaml",
    "configs/optimizer/adamw.yaml",
    "configs/optimizer/sgd.yaml",
    "configs/scheduler/cosine.yaml",
    "configs/scheduler/onecycle.yaml",
    "configs/trainer/default.yaml",
    "configs/trainer/cpu.yaml",
    "configs/trainer/gpu.yaml",
    "configs/trainer/ddp.yaml",
    "configs/trainer/ddp_cpu.yaml",
    "configs/trainer/mps.yaml",
    "configs/callbacks/default.yaml",
    "configs/callbacks/none.yaml",
    "configs/logger/wandb.yaml",
    "configs/logger/csv.yaml",
    "configs/logger/tensorboard.yaml",
    "configs/logger/mlflow.yaml",
    "configs/paths/default.yaml",
    "configs/hydra/default.yaml",
    "configs/hydra/launcher/joblib.yaml",
    "configs/hydra/job_logging/compact.yaml",
    "src/PKG/__init__.py",
    "src/PKG/addons/__init__.py",
    "src/PKG/cli.py",
    "src/PKG/cli_help.py",
    "src/PKG/agent_args.py",
    "src/PKG/sweep.py",
    "src/PKG/trials.py",
    "src/PKG/predict.py",
    "src/PKG/paths.py",
    "src/PKG/config_checks.py",
    "src/PKG/failures.py",
    "src/PKG/errors.py",
    "src/PKG/checkpoints.py",
    "src/PKG/training.py",
    "src/PKG/evaluation.py",
    "src/PKG/run_dirs.py",
    "src/PKG/run_table.py",
    "src/PKG/runs.py",
    "src/PKG/parallel_jobs.py",
    "src/hydra_plugins/PKG_launcher.py",
    "src/PKG/distributed.py",
    "src/PKG/data/__init__.py",
    "src/PKG/data/base.py",
    "src/PKG/data/in_memory.py",
    "src/PKG/data/digits.py",
    "src/PKG/data/cifar10.py",
    "src/PKG/data/mnist.py",
    "src/PKG/data/image_folder.py",
    "src/PKG/data/downloads.py",
    "src/PKG/data/stats.py",
    "src/PKG/models/__init__.py",
    "src/PKG/models/classifier.py",
    "src/PKG/models/mlp.py",
    "src/PKG/models/alexnet.py",
    "src/PKG/models/resnet.py",
    "src/PKG/utils/__init__.py",
    "src/PKG/utils/loggers.py",
    "src/PKG/utils/callbacks.py",
    "src/PKG/utils/metrics.py",
    "src/PKG/utils/report.py",
    "src/PKG/utils/fault_tolerance.py",
    "src/PKG/utils/run_record.py",
    "src/PKG/utils/threads.py",
    "src/PKG/utils/console.py",
    "src/PKG/utils/child_ranks.py",
    "tests/conftest.py",
    "tests/test_configs.py",
    "tests/test_models.py",
    "tests/test_training.py",
    "tests/test_cli_startup.py",
    "tests/test_wandb.py",
    "tests/test_console.py",
    "tests/test_loggers.py",
    "tests/test_sweeps.py",
    "tests/test_parallel_jobs.py",
    "tests/wandb_records.py",
    "tests/fake_data.py",
    "tests/test_checkpoints.py",
    "tests/test_datasets.py",
    "tests/test_predict.py",
    "tests/test_fault_tolerance.py",
    "tests/kill_switch.py",
    "tests/test_config_errors.py",
    "tests/test_run_record.py",
    "tests/test_runs.py",
    "tests/test_distributed.py",
    "tests/test_readme.py",
}
# Rendered only when their option is chosen (on for a true switch, and for ci unless "none").
OPTIONAL_FILES = {
    "include_slurm": {
        "src/PKG/addons/slurm.py",
        "configs/hydra/launcher/slurm.yaml",
        "tests/test_slurm.py",
        "tests/slurm_cluster.py",
    },
    "include_optuna": {
        "src/PKG/search.py",
        "src/PKG/addons/hparams_search.py",
        "src/PKG/utils/pruning.py",
        "configs/hparams_search/digits_mlp.yaml",
        "tests/test_search.py",
    },
    "include_docker": {"Dockerfile", ".dockerignore"},
    "ci": {".github/workflows/ci.yml"},
}
DEFAULT_OPTIONS = {
    key: value[0] if isinstance(value, list) else value
    for key, value in json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text()).items()
    if key in {*OPTIONAL_FILES, "license", "python_version"}
}
# Every named answer set and every named option combination, rendered once per test module.
RENDER_CASES: dict[str, dict[str, object]] = {
    **{f"answers-{name}": answers for name, answers in ANSWER_SETS.items()},
    **{f"options-{name}": options for name, options in COMBINATIONS.items()},
}


def options_of(answers: dict[str, object]) -> dict[str, object]:
    return DEFAULT_OPTIONS | {key: value for key, value in answers.items() if key in DEFAULT_OPTIONS}


def expected_files(answers: dict[str, object]) -> set[str]:
    options = options_of(answers)
    files = set(EXPECTED_FILES)
    for option, paths in OPTIONAL_FILES.items():
        if options[option] not in (False, "none"):
            files |= paths
    if options["license"] != "proprietary":
        files.add("LICENSE")
    return files


@dataclass(frozen=True)
class Rendered:
    project: Path
    answers: dict[str, object]

    @property
    def package(self) -> str:
        # src/ also holds hydra_plugins/, where Hydra looks for the project's launcher.
        return next(path.name for path in (self.project / "src").iterdir() if path.name != "hydra_plugins")


@pytest.fixture(scope="module", params=RENDER_CASES, ids=str)
def rendered(request, tmp_path_factory) -> Rendered:
    """The template rendered with one named answer set or option combination."""
    from cookiecutter.main import cookiecutter

    answers = RENDER_CASES[request.param]
    out = tmp_path_factory.mktemp(request.param)
    project = cookiecutter(str(TEMPLATE_DIR), no_input=True, output_dir=str(out), extra_context=answers)
    return Rendered(Path(project), answers)


def files_of(project: Path) -> set[str]:
    return {
        str(p.relative_to(project))
        for p in project.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_renders_exactly_the_expected_files(rendered):
    expected = {name.replace("PKG", rendered.package) for name in expected_files(rendered.answers)}
    assert files_of(rendered.project) == expected


def test_no_jinja_survives(rendered):
    project = rendered.project
    leftovers = [name for name in files_of(project) if jinja_left_in((project / name).read_text())]
    assert leftovers == []


def test_every_python_file_compiles_and_passes_ruff(rendered):
    project = rendered.project
    for path in project.rglob("*.py"):
        ast.parse(path.read_text(), filename=str(path))
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(project)],
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    formatting = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", str(project)],
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert formatting.returncode == 0, formatting.stdout + formatting.stderr


def test_every_yaml_toml_and_json_file_parses(rendered):
    for path in rendered.project.rglob("*"):
        if path.suffix in {".yaml", ".yml"}:
            yaml.safe_load(path.read_text())
        elif path.suffix == ".toml":
            tomllib.loads(path.read_text())
        elif path.suffix == ".json":
            json.loads(path.read_text())


def test_answers_round_trip_into_pyproject_and_wandb_config(rendered):
    project, answers = rendered.project, rendered.answers
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    wandb = yaml.safe_load((project / "configs" / "logger" / "wandb.yaml").read_text())["wandb"]
    defaults = {"description": meta["description"], "author_name": meta["authors"][0]["name"]}
    for key, value in answers.items():
        if key in defaults:
            assert defaults[key] == value
    assert meta["authors"][0].get("email", "") == answers.get("author_email", "you@example.com")
    assert meta["name"] == project.name
    assert set(meta["scripts"]) == {f"{project.name}-train", f"{project.name}-eval"}
    assert wandb["project"] == answers.get("wandb_project", project.name)
    assert wandb["entity"] == (answers.get("wandb_entity") or None)
    assert answers.get("project_name", "My ML Project") in (project / "README.md").read_text()


def test_python_version_sets_requires_python_and_ruffs_target(rendered):
    version = options_of(rendered.answers)["python_version"]
    pyproject = tomllib.loads((rendered.project / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={version}"
    assert pyproject["tool"]["ruff"]["target-version"] == f"py{version.replace('.', '')}"


LICENSE_TITLES = {
    "MIT": "MIT License",
    "BSD-3-Clause": "BSD 3-Clause License",
    "Apache-2.0": "Apache License",
}


def test_license_file_and_pyproject_match_the_answer(rendered):
    project, license_id = rendered.project, options_of(rendered.answers)["license"]
    author = str(rendered.answers.get("author_name", "Your Name"))
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    if license_id == "proprietary":
        assert not (project / "LICENSE").exists()
        assert pyproject["license"] == "LicenseRef-Proprietary" and "license-files" not in pyproject
    else:
        text = (project / "LICENSE").read_text()
        assert text.lstrip().startswith(LICENSE_TITLES[license_id])
        assert re.search(
            rf"Copyright (\(c\) )?{date.today().year},? {re.escape(author)}$", text, re.MULTILINE
        )
        assert pyproject["license"] == license_id and pyproject["license-files"] == ["LICENSE"]


# One render per license is enough here; the free-text answer sets' wheels are the business of
# test_generated_project.py.
@pytest.mark.parametrize("rendered", [f"options-{name}" for name in COMBINATIONS], indirect=True)
def test_hatchling_accepts_the_license_and_puts_it_in_the_wheel(rendered, tmp_path):
    license_id = options_of(rendered.answers)["license"]
    expression = "LicenseRef-Proprietary" if license_id == "proprietary" else license_id
    # The tests' Python may be older than the render's python_version; the build is what is tested.
    wheel_command = [
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--ignore-requires-python",
        "-w",
        str(tmp_path),
        ".",
    ]
    build = subprocess.run(
        [sys.executable, "-m", *wheel_command], cwd=rendered.project, capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr
    with zipfile.ZipFile(next(tmp_path.glob("*.whl"))) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert f"License-Expression: {expression}" in metadata.splitlines()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names) == (license_id != "proprietary")


# What each unchosen option must leave no mention of, anywhere in the rendered project.
UNCHOSEN_WORDS = {
    "include_slurm": ("slurm", "submitit"),
    "include_optuna": ("optuna", "hparams_search", "pruning"),
    "include_docker": ("dockerfile", ".dockerignore"),
    "ci": (".github",),
}


def test_minimal_render_leaves_no_trace_of_unchosen_parts(tmp_path):
    from cookiecutter.main import cookiecutter

    answers = COMBINATIONS["minimal"]
    assert all(options_of(answers)[option] in (False, "none") for option in UNCHOSEN_WORDS)
    project = Path(
        cookiecutter(str(TEMPLATE_DIR), no_input=True, output_dir=str(tmp_path), extra_context=answers)
    )
    words = [word for option_words in UNCHOSEN_WORDS.values() for word in option_words]
    mentions = [
        f"{name}:{number}: {line.strip()}"
        for name in sorted(files_of(project))
        for number, line in enumerate((project / name).read_text().splitlines(), 1)
        if any(word in line.lower() for word in words)
    ]
    assert mentions == []


def test_rendered_configs_compose_with_the_chosen_package(rendered):
    project = rendered.project
    result = subprocess.run(
        [sys.executable, "train.py", "+experiment=aplite", "--cfg", "job"],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(project / "src"), "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    composed = yaml.safe_load(result.stdout)
    assert composed["model"]["_target_"] == f"{rendered.package}.models.alexnet.AlexNet"


def test_gitignore_keeps_every_rendered_file_and_drops_secrets_and_outputs(rendered, tmp_path):
    # A copy, so the module's rendering stays untouched for other tests.
    project = tmp_path / "project"
    shutil.copytree(rendered.project, project)
    rendered_files = files_of(project)
    for local in (".env", "logs/runs/x/metrics.json", "data/cifar10/x.bin", "wandb/run.wandb"):
        (project / local).parent.mkdir(parents=True, exist_ok=True)
        (project / local).write_text("WANDB_API_KEY=secret\n")
    git = ["git", "-c", "init.defaultBranch=main", "-C", str(project)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    tracked = subprocess.run([*git, "ls-files"], check=True, capture_output=True, text=True).stdout.split()
    assert set(tracked) == rendered_files


def test_no_code_or_config_uses_wandbs_thread_start_method(rendered):
    # wandb 0.29+ rejects start_method="thread" although W&B's Hydra page still suggests it.
    sources = [p for p in rendered.project.rglob("*") if p.suffix in {".py", ".yaml", ".toml"}]
    assert [p.name for p in sources if "start_method" in p.read_text()] == []
    assert 'start_method="thread"' in (rendered.project / "README.md").read_text()


def test_every_question_has_prompt_text_and_switches_are_json_booleans():
    context = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
    questions = {key: value for key, value in context.items() if not key.startswith("_")}
    prompts = context["__prompts__"]
    assert set(prompts) == set(questions)
    for key, value in questions.items():
        # A choice has one question, or a question and a text per choice.
        if isinstance(value, list) and not isinstance(prompts[key], str):
            assert set(prompts[key]) == {"__prompt__", *value}, key
    assert all(
        isinstance(questions[key], bool) for key in ("include_slurm", "include_optuna", "include_docker")
    )
    assert set(COMBINATIONS["minimal"]) >= set(UNCHOSEN_WORDS)


# logger: the distributions it needs (the pyproject extra of the same name lists them)
LOGGER_PACKAGES = {
    "wandb": {"wandb"},
    "tensorboard": {"tensorboard"},
    "mlflow": {"mlflow-skinny", "sqlalchemy", "alembic"},
    "csv": set(),
}


@pytest.mark.parametrize("logger", LOGGER_PACKAGES)
def test_the_chosen_logger_is_the_default_and_the_only_logger_dependency(tmp_path, logger):
    from cookiecutter.main import cookiecutter
    from packaging.requirements import Requirement

    project = Path(
        cookiecutter(
            str(TEMPLATE_DIR), no_input=True, output_dir=str(tmp_path), extra_context={"logger": logger}
        )
    )
    defaults = yaml.safe_load((project / "configs" / "config.yaml").read_text())["defaults"]
    assert {"logger": logger} in defaults
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]

    def names(requirements: list[str]) -> set[str]:
        return {Requirement(line).name for line in requirements}

    every_logger = set().union(*LOGGER_PACKAGES.values())
    assert names(meta["dependencies"]) & every_logger == LOGGER_PACKAGES[logger]
    for name in ("wandb", "tensorboard", "mlflow"):
        assert names(extras[name]) == LOGGER_PACKAGES[name]
    assert f"{project.name}[wandb,tensorboard,mlflow]" in extras["dev"]  # the project's tests use them all
    # W&B sweeps need wandb whatever the default logger, and their trials must log to W&B.
    assert "wandb" in names(meta["dependencies"] + extras["sweeps"])
    for sweep_file in ("sweep.yaml", "sweeps/bayes.yaml", "sweeps/experiments.yaml"):
        command = yaml.safe_load((project / sweep_file).read_text())["command"]
        assert ("logger=wandb" in command) == (logger != "wandb")
