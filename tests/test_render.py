"""Rendering with defaults and awkward answers gives a complete, valid project."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import ANSWER_SETS, TEMPLATE_DIR

EXPECTED_FILES = {
    ".gitignore",
    ".env.example",
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
    "configs/paths/default.yaml",
    "configs/hydra/default.yaml",
    "configs/hydra/launcher/slurm.yaml",
    "configs/hydra/launcher/joblib.yaml",
    "configs/hparams_search/digits_mlp.yaml",
    "src/PKG/__init__.py",
    "src/PKG/cli.py",
    "src/PKG/agent_args.py",
    "src/PKG/sweep.py",
    "src/PKG/trials.py",
    "src/PKG/search.py",
    "src/PKG/predict.py",
    "src/PKG/paths.py",
    "src/PKG/config_checks.py",
    "src/PKG/failures.py",
    "src/PKG/errors.py",
    "src/PKG/checkpoints.py",
    "src/PKG/training.py",
    "src/PKG/evaluation.py",
    "src/PKG/run_dirs.py",
    "src/PKG/slurm.py",
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
    "src/PKG/utils/pruning.py",
    "src/PKG/utils/child_ranks.py",
    "tests/conftest.py",
    "tests/test_configs.py",
    "tests/test_models.py",
    "tests/test_training.py",
    "tests/test_wandb.py",
    "tests/test_sweeps.py",
    "tests/test_parallel_jobs.py",
    "tests/test_search.py",
    "tests/wandb_records.py",
    "tests/fake_data.py",
    "tests/test_checkpoints.py",
    "tests/test_datasets.py",
    "tests/test_predict.py",
    "tests/test_fault_tolerance.py",
    "tests/kill_switch.py",
    "tests/slurm_cluster.py",
    "tests/test_slurm.py",
    "tests/test_config_errors.py",
    "tests/test_run_record.py",
    "tests/test_distributed.py",
    "tests/test_readme.py",
}


@dataclass(frozen=True)
class Rendered:
    project: Path
    answers: dict[str, str]

    @property
    def package(self) -> str:
        # src/ also holds hydra_plugins/, where Hydra looks for the project's launcher.
        return next(path.name for path in (self.project / "src").iterdir() if path.name != "hydra_plugins")


@pytest.fixture(scope="module", params=ANSWER_SETS, ids=str)
def rendered(request, tmp_path_factory) -> Rendered:
    """The template rendered with one named answer set."""
    from cookiecutter.main import cookiecutter

    answers = ANSWER_SETS[request.param]
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
    assert files_of(rendered.project) == {name.replace("PKG", rendered.package) for name in EXPECTED_FILES}


def test_no_jinja_survives(rendered):
    project = rendered.project
    leftovers = [
        name for name in files_of(project) if any(m in (project / name).read_text() for m in ("{{", "{%"))
    ]
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


def test_every_yaml_and_toml_file_parses(rendered):
    for path in rendered.project.rglob("*.yaml"):
        yaml.safe_load(path.read_text())
    tomllib.loads((rendered.project / "pyproject.toml").read_text())


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
