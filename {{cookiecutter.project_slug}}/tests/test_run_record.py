"""Every run dir records what reproduces it; the same config and seed give the same numbers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_DIR, run_script, train_cli

from {{ cookiecutter.package_name }}.utils.run_record import PACKAGES, git_state

GIT_IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
# What a copy of the project leaves out: its outputs and the repo it may already be in.
TOP_LEVEL_NOT_COPIED = {".git", "logs", "data", "wandb", "outputs", ".pytest_cache", ".ruff_cache"}


def not_copied(directory: str, names: list[str]) -> set[str]:
    skipped = TOP_LEVEL_NOT_COPIED if Path(directory) == PROJECT_DIR else set()
    return {name for name in names if name in skipped or name == "__pycache__"}


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def committed_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "first")
    return path


def read_record(record: Path) -> tuple[dict, dict, str]:
    environment = yaml.safe_load((record / "environment.yaml").read_text())
    config_text = (record / "config.yaml").read_text()
    return environment, yaml.safe_load(config_text), config_text


def test_same_config_and_seed_give_bit_identical_metrics(tmp_path):
    overrides = ["trainer.max_epochs=2", "logger=csv"]
    first = train_cli(tmp_path / "first", *overrides)
    second = train_cli(tmp_path / "second", *overrides)
    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes()
    assert (first / "csv" / "metrics.csv").read_bytes() == (second / "csv" / "metrics.csv").read_bytes()


@pytest.mark.parametrize("code", ["dirty-repo", "not-a-repo", "git-missing"])
def test_run_dir_records_config_versions_and_git_state(tmp_path, code):
    project = Path(shutil.copytree(PROJECT_DIR, tmp_path / "project", ignore=not_copied))
    env = {"PYTHONPATH": os.pathsep.join([str(project / "src"), os.environ.get("PYTHONPATH", "")])}
    if code == "dirty-repo":
        git(project, "init", "-q")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "the code")
        with open(project / "README.md", "a") as readme:
            readme.write("\nAn uncommitted edit.\n")
        (project / "notes.txt").write_text("not in git")
    if code == "git-missing":
        env["PATH"] = str(tmp_path / "no-git-here")

    run = tmp_path / "run"
    result = run_script(
        "train.py", "trainer.max_epochs=1", "~logger", "optimizer.lr=0.002", f"hydra.run.dir={run}",
        cwd=project, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    environment, config, config_text = read_record(run / "record")

    assert "${" not in config_text
    assert config["optimizer"]["lr"] == 0.002
    assert config["model"]["input_shape"] == [1, 8, 8]
    assert config["callbacks"]["best_checkpoint"]["dirpath"] == f"{run}/checkpoints"
    assert yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())[0] == "trainer.max_epochs=1"
    assert environment["python"].endswith(".".join(map(str, sys.version_info[:3])))
    assert environment["packages"] == {name: installed_version(name) for name in PACKAGES}

    state = environment["git"]
    if code == "dirty-repo":
        assert state["commit"] == git(project, "rev-parse", "HEAD")
        assert state["dirty"] is True and state["untracked"] == ["notes.txt"]
        assert "+An uncommitted edit." in (run / "record" / "git.diff").read_text()
    else:
        assert state["commit"] is None and not (run / "record" / "git.diff").exists()
        expected = "not a git repository" if code == "not-a-repo" else "git is not installed"
        assert expected in state["error"]


def test_resume_keeps_the_record_of_the_start_and_adds_its_own(tmp_path):
    run = train_cli(tmp_path / "run", "trainer.max_epochs=1", "~logger")
    resumed = run_script("train.py", f"resume={run}", "trainer.max_epochs=2", cwd=PROJECT_DIR)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _, started, _ = read_record(run / "record")
    _, resumed_config, _ = read_record(run / "record" / "resume-1")
    assert started["trainer"]["max_epochs"] == 1 and started["ckpt_path"] is None
    assert resumed_config["trainer"]["max_epochs"] == 2
    assert resumed_config["ckpt_path"] == str(run / "checkpoints" / "last.ckpt")


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def change_tracked_file(repo: Path) -> None:
    (repo / "a.py").write_text("a = 2\n")


def stage_new_file(repo: Path) -> None:
    (repo / "new.py").write_text("new = 1\n")
    git(repo, "add", "new.py")


def rename_file(repo: Path) -> None:
    git(repo, "mv", "a.py", "renamed.py")


def add_untracked_file(repo: Path) -> None:
    (repo / "scratch.py").write_text("scratch = 1\n")


TREES = {
    "clean": (lambda repo: None, False, []),
    "tracked-file-changed": (change_tracked_file, True, []),
    "new-file-staged": (stage_new_file, True, []),
    "file-renamed": (rename_file, True, []),
    "untracked-file-only": (add_untracked_file, False, ["scratch.py"]),
}


@pytest.mark.parametrize(("change", "dirty", "untracked"), TREES.values(), ids=TREES)
def test_patch_restores_the_dirty_tree_on_its_commit(tmp_path, change, dirty, untracked):
    repo = committed_repo(tmp_path / "repo", {"a.py": "a = 1\n", "b.py": "b = 1\n"})
    change(repo)
    patch = tmp_path / "git.diff"
    state = git_state(repo, patch)
    head = git(repo, "rev-parse", "HEAD")
    assert (state["commit"], state["dirty"], state["untracked"]) == (head, dirty, untracked)
    assert patch.exists() == dirty
    if dirty:
        tree = {path.name: path.read_text() for path in repo.glob("*.py")}
        git(repo, "reset", "-q", "--hard")
        git(repo, "apply", "--index", str(patch))
        assert {path.name: path.read_text() for path in repo.glob("*.py")} == {
            name: text for name, text in tree.items() if name not in untracked
        }


def test_repo_without_a_commit_is_recorded_not_fatal(tmp_path):
    (tmp_path / "repo").mkdir()
    git(tmp_path / "repo", "init", "-q")
    state = git_state(tmp_path / "repo", tmp_path / "git.diff")
    assert state["commit"] is None and "HEAD" in state["error"]


def test_interrupted_run_has_its_record(tmp_path):
    run = tmp_path / "run"
    endless = ["trainer.max_epochs=1000", "callbacks.early_stopping.patience=1000", "~logger"]
    command = [sys.executable, "train.py", *endless, f"hydra.run.dir={run}"]
    process = subprocess.Popen(command, cwd=PROJECT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (run / "checkpoints" / "last.ckpt").exists():
            assert process.poll() is None and time.monotonic() < deadline, "no epoch ended in 300 s"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=300)
    finally:
        process.kill()
    environment, config, _ = read_record(run / "record")
    assert config["trainer"]["max_epochs"] == 1000 and environment["packages"]["torch"]
    assert not (run / "metrics.json").exists()
