"""A generated project follows the template with cruft; the first-time steps happen once only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TEMPLATE_DIR, load_hook

post_gen = load_hook("post_gen_project")

CRUFT = [sys.executable, "-m", "cruft"]
# The project's own repository is committed to with an explicit identity: CI may have none.
IDENTITY = ["-c", "user.name=Test User", "-c", "user.email=test@example.com"]
NEXT_STEPS = "Created my-ml-project. Next:"
TEMPLATE_CHANGE = "# Added by the second template commit.\n"
USER_EDIT = "\nNotes of the project's own.\n"


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A command as a script runs it: no terminal, stdin closed, so a prompt fails instead of waiting."""
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300
    )


def git(cwd: Path, *args: str) -> str:
    result = run(["git", *IDENTITY, *args], cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def commit_count(project: Path) -> int:
    return int(git(project, "rev-list", "--count", "HEAD"))


@dataclass(frozen=True)
class TemplateRepo:
    path: Path
    old: str
    new: str


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory) -> TemplateRepo:
    """The template as a git repository at two commits; the second changes a config and adds a file."""
    path = tmp_path_factory.mktemp("template") / "repo"
    junk = shutil.ignore_patterns(".git", ".venv", "build", "__pycache__", ".*_cache", ".hypothesis")
    shutil.copytree(TEMPLATE_DIR, path, ignore=junk)
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "old template")
    old = git(path, "rev-parse", "HEAD")
    project = path / "{{cookiecutter.project_slug}}"
    with (project / "configs" / "train.yaml").open("a") as config:
        config.write(TEMPLATE_CHANGE)
    (project / "CHANGELOG.md").write_text("# Changelog\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "new template")
    return TemplateRepo(path, old, git(path, "rev-parse", "HEAD"))


# How the project got its repository: the user made it, or the template's git_init did.
REPOSITORY_ORIGINS = {"user-git-init": False, "template-git-init": True}


@pytest.mark.parametrize("git_init", REPOSITORY_ORIGINS.values(), ids=REPOSITORY_ORIGINS)
def test_cruft_update_takes_the_template_change_and_keeps_the_users_work(template_repo, tmp_path, git_init):
    answers = json.dumps({"git_init": git_init})
    create = run(
        [*CRUFT, "create", "--no-input", "--checkout", template_repo.old, "--extra-context", answers,
         "--output-dir", str(tmp_path), str(template_repo.path)],
        tmp_path,
    )  # fmt: skip
    assert create.returncode == 0, create.stderr
    assert NEXT_STEPS in create.stdout
    project = tmp_path / "my-ml-project"
    if not git_init:
        git(project, "init", "-q")
    # cruft writes .cruft.json after the hooks: the next steps tell the user to commit it.
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "generated" if not git_init else "link to the template")
    (project / "README.md").write_text((project / "README.md").read_text() + USER_EDIT)
    (project / "notes").mkdir()
    (project / "notes" / "mine.txt").write_text("mine\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "user edits")
    commits, repository = commit_count(project), (project / ".git").stat().st_ino

    stale = run([*CRUFT, "check"], project)
    assert stale.returncode == 1 and "out of date" in stale.stdout
    update = run([*CRUFT, "update", "--skip-apply-ask", "--checkout", template_repo.new], project)

    assert update.returncode == 0, update.stdout + update.stderr
    assert NEXT_STEPS not in update.stdout + update.stderr
    assert (project / "configs" / "train.yaml").read_text().endswith(TEMPLATE_CHANGE)
    assert (project / "CHANGELOG.md").read_text() == "# Changelog\n"
    assert (project / "README.md").read_text().endswith(USER_EDIT)
    assert (project / "notes" / "mine.txt").read_text() == "mine\n"
    # The same repository, with the user's history, and nothing of a re-render's `git init` in it.
    assert (project / ".git").stat().st_ino == repository
    assert commit_count(project) == commits
    assert git(project, "log", "-1", "--format=%s") == "user edits"
    changed = {line.split()[-1] for line in git(project, "status", "--porcelain").splitlines()}
    assert changed == {".cruft.json", "CHANGELOG.md", "configs/train.yaml"}
    assert json.loads((project / ".cruft.json").read_text())["commit"] == template_repo.new
    assert run([*CRUFT, "check"], project).returncode == 0
    # What differs from the template now is the user's edit alone.
    diff = run([*CRUFT, "diff"], project)
    assert diff.returncode == 0 and NEXT_STEPS not in diff.stdout + diff.stderr
    differing = [line.split("/")[-1] for line in diff.stdout.splitlines() if line.startswith("diff --git")]
    assert differing == ["README.md"]


def cookiecutter(output_dir: Path, *answers: str, env: dict[str, str] | None = None, extra=()):
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(output_dir), *extra]
    return run([*command, str(TEMPLATE_DIR), *answers], output_dir, env)


def no_git_identity(home: Path) -> dict[str, str]:
    """An environment where git knows no user, as on a fresh machine or CI runner."""
    home.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(home), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def test_git_init_makes_a_repository_with_everything_in_one_commit(tmp_path):
    result = cookiecutter(
        tmp_path, "git_init=true", "author_name=Ada Lovelace", "author_email=ada@example.org",
        env=no_git_identity(tmp_path / "home"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    project = tmp_path / "my-ml-project"
    assert commit_count(project) == 1
    assert git(project, "status", "--porcelain") == ""
    assert git(project, "log", "--format=%an <%ae>") == "Ada Lovelace <ada@example.org>"
    assert NEXT_STEPS in result.stdout


def test_default_answers_make_no_repository(tmp_path):
    result = cookiecutter(tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "my-ml-project" / ".git").exists()
    assert NEXT_STEPS in result.stdout


def test_regenerating_over_a_repository_never_inits_it_again(tmp_path):
    assert cookiecutter(tmp_path, "git_init=true").returncode == 0
    project = tmp_path / "my-ml-project"
    (project / "mine.txt").write_text("mine\n")
    again = cookiecutter(tmp_path, "git_init=true", extra=("--overwrite-if-exists",))
    assert again.returncode == 0, again.stderr
    assert commit_count(project) == 1
    assert git(project, "status", "--porcelain") == "?? mine.txt"


# A PATH whose `git` is missing, fails, or cannot even be executed.
BROKEN_GITS = {
    "git-absent": (None, "warning: git not found"),
    "git-failing": ("#!/bin/sh\necho 'fatal: disk on fire' >&2\nexit 128\n", "warning: git init failed"),
    "git-unrunnable": ("#!/nonexistent/interpreter\n", "warning: git could not run"),
}


@pytest.mark.parametrize(("script", "warning"), BROKEN_GITS.values(), ids=BROKEN_GITS)
def test_generation_succeeds_with_one_warning_line_when_git_cannot_run(tmp_path, script, warning):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if script:
        (bin_dir / "git").write_text(script)
        (bin_dir / "git").chmod(0o755)
    output = tmp_path / "out"
    output.mkdir()
    result = cookiecutter(output, "git_init=true", env={**os.environ, "PATH": str(bin_dir)})
    assert result.returncode == 0, result.stderr
    assert (output / "my-ml-project" / "train.py").is_file()
    assert not (output / "my-ml-project" / ".git").exists()
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and warnings[0].startswith(warning), result.stderr
    assert "Traceback" not in result.stderr
    assert NEXT_STEPS in result.stdout


# cookiecutter hands a yes/no answer as a bool; a command line or `.cruft.json` may give text.
YES_NO = {True: True, "true": True, "True": True, "yes": True, "1": True,
          False: False, "false": False, "False": False, "no": False, "0": False, "": False}  # fmt: skip


@pytest.mark.parametrize(("answer", "meaning"), YES_NO.items(), ids=[repr(answer) for answer in YES_NO])
def test_yes_no_answers_mean_the_same_in_every_spelling(answer, meaning):
    assert post_gen.chosen(answer) is meaning


BY_CRUFT = {"logger": "csv", "_commit": "0123abc"}  # cruft adds `_commit` to the answers
# (answers, a Makefile rendered, a first commit made) -> lines the next steps must (+) or must not (-) show
NEXT_STEP_CASES = {
    "wandb-no-makefile": ({"logger": "wandb"}, False, False, ["+wandb login", "-make help", "-cruft"]),
    "csv-with-makefile": ({"logger": "csv"}, True, False, ["+make help", "-wandb", "-cruft"]),
    "cruft-create-committed": (BY_CRUFT, False, True, ["+git add .cruft.json", "+cruft check"]),
    "cruft-create-no-repo": (BY_CRUFT, False, False, ["-git add", "+cruft check"]),
}  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "makefile", "committed", "expected"), NEXT_STEP_CASES.values(), ids=NEXT_STEP_CASES
)
def test_next_steps_show_the_commands_that_apply(tmp_path, answers, makefile, committed, expected):
    if makefile:
        (tmp_path / "Makefile").write_text("help:\n")
    message = post_gen.next_steps({"project_slug": "demo", **answers}, tmp_path, committed)
    assert "cd demo" in message and "pip install -e '.[dev]'" in message and "python train.py" in message
    # A virtual environment, then torch from the index that fits, then the project.
    steps = ("python -m venv .venv", "pip install torch --index-url", "pip install -e '.[dev]'")
    assert [message.index(step) for step in steps] == sorted(message.index(step) for step in steps)
    for line in expected:
        assert (line[1:] in message) is (line[0] == "+"), message
