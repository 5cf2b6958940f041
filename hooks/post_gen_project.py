"""After rendering: drop what the answers did not choose, then the optional first-time steps.

Valid Python before and after rendering: the only Jinja is the JSON of the answers inside a
raw string, parsed in `main()`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ANSWERS_JSON = r"""{{ cookiecutter | tojson }}"""
# The name `tempfile.mkdtemp()` gives a folder: cruft re-renders the template into one.
PYTHON_TEMP_DIR_RE = re.compile(r"tmp[a-z0-9_]{8}")
# pip's default torch on Linux is the CUDA build (GBs); these pick the one that fits.
TORCH_BUILDS = "https://pytorch.org/get-started/locally"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


# What each optional part adds, removed together when it is not chosen (PKG: the package's
# folder). Code reaches an optional module only through src/PKG/addons/, which finds the modules
# that are there; README sections and pyproject extras are Jinja blocks on the same answers.
OPTIONAL_PARTS: dict[str, tuple[str, ...]] = {
    "include_slurm": (
        "src/PKG/addons/slurm.py",
        "configs/hydra/launcher/slurm.yaml",
        "tests/test_slurm.py",
        "tests/slurm_cluster.py",
    ),
    "include_optuna": (
        "src/PKG/search.py",
        "src/PKG/addons/hparams_search.py",
        "src/PKG/utils/pruning.py",
        "configs/hparams_search",
        "tests/test_search.py",
    ),
    "include_docker": ("Dockerfile", ".dockerignore"),
    "ci": (".github",),
}
LICENSES_DIR = "licenses"  # one full text per license; the chosen one becomes LICENSE
OFF_ANSWERS = {"false", "no", "n", "0", "off", "none", ""}


def chosen(value: object) -> bool:
    """An answer as a switch: a JSON boolean, the text the command line and cruft may hand over
    instead ("True", "false"), or a choice whose "none" means off (ci)."""
    return value if isinstance(value, bool) else str(value).strip().lower() not in OFF_ANSWERS


def unchosen_paths(answers: dict) -> list[str]:
    """The paths, relative to the project, of the parts the answers leave out."""
    package = answers["package_name"]
    return [
        path.replace("PKG", package)
        for option, paths in OPTIONAL_PARTS.items()
        if not chosen(answers[option])
        for path in paths
    ]


def prune_unchosen(answers: dict, project: Path | None = None) -> None:
    """Remove the parts of options that were not chosen, and keep only the chosen license."""
    project = project or Path.cwd()
    for relative in unchosen_paths(answers):
        path = project / relative
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    licenses = project / LICENSES_DIR
    text = licenses / answers["license"]
    if text.is_file():
        text.replace(project / "LICENSE")
    shutil.rmtree(licenses, ignore_errors=True)


def rendered_again_by_cruft(answers: dict, project_dir: Path) -> bool:
    """True while `cruft update` / `cruft diff` re-render the template to compute a diff.

    cruft adds `_commit` to the answers, on `cruft create` too. Its re-renders (and only they)
    go through `cruft._commands.utils.generate`, which renders into a fresh `mkdtemp()` folder
    and then moves the files into its own working folders: the project being rendered is then
    the only thing in a `tmpXXXXXXXX` folder right under the temp dir. cruft sets no variable
    and passes no flag that would say so (2.16).
    """
    parent = project_dir.parent
    return (
        "_commit" in answers
        and parent.parent == Path(tempfile.gettempdir()).resolve()
        and PYTHON_TEMP_DIR_RE.fullmatch(parent.name) is not None
        and [child.name for child in parent.iterdir()] == [project_dir.name]
    )


def git_first_commit(answers: dict, project_dir: Path) -> bool:
    """`git init` and a first commit of everything; on any failure one warning line, never an error."""
    git = shutil.which("git")
    if git is None:
        print("warning: git not found: no repository made (run `git init` yourself)", file=sys.stderr)
        return False
    if (project_dir / ".git").exists():
        return False  # regenerated over an existing repository: never a second `git init`
    try:
        failure = commit_everything(git, answers, project_dir)
    except OSError as error:  # e.g. a `git` on PATH that cannot be executed
        failure = f"git could not run: {error}"
    if failure:
        print(f"warning: {failure}", file=sys.stderr)
    return failure is None


def commit_everything(git: str, answers: dict, project_dir: Path) -> str | None:
    """Run the git steps; the first failure as one line, or None."""
    # The answers' author only where the user has no identity of their own.
    identity = []
    for key, answer, fallback in (
        ("user.name", answers.get("author_name"), "Project author"),
        ("user.email", answers.get("author_email"), "author@example.invalid"),
    ):
        configured = subprocess.run([git, "config", key], capture_output=True, text=True, cwd=project_dir)
        if not configured.stdout.strip():
            identity += ["-c", f"{key}={answer or fallback}"]
    steps = {
        "init": ["init", "-q"],
        "add": ["add", "-A"],
        "commit": [*identity, "commit", "-q", "--no-verify", "-m", "Initial commit from the template"],
    }
    for name, arguments in steps.items():
        result = subprocess.run([git, *arguments], capture_output=True, text=True, cwd=project_dir)
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
            return f"git {name} failed, no first commit made: {reason}"
    return None


def next_steps(answers: dict, project_dir: Path, committed: bool) -> str:
    slug = answers["project_slug"]
    lines = [
        f"cd {slug}",
        "python -m venv .venv && . .venv/bin/activate",
        f"# first the torch build for this machine ({TORCH_BUILDS}), e.g. CPU only:",
        f"pip install torch --index-url {TORCH_CPU_INDEX}",
        "pip install -e '.[dev]'",
        "python train.py                # digits + MLP, about 10 s on a CPU",
    ]
    if (project_dir / "Makefile").is_file():
        lines.append("make help                      # install, train, test, lint, sweep")
    if answers.get("logger", "wandb") == "wandb":
        lines.append("wandb login                    # optional: without it runs stay offline")
    if "_commit" in answers:  # made by `cruft create`, which writes .cruft.json after this hook
        if committed:
            lines.append("git add .cruft.json && git commit -m 'Link to the template'")
        lines.append("cruft check                    # later: is the template newer? `cruft update`")
    return f"\nCreated {slug}. Next:\n" + "".join(f"  {line}\n" for line in lines)


def first_time_steps(answers: dict) -> None:
    """git init and a first commit if asked, and the next steps; nothing while cruft re-renders."""
    project_dir = Path.cwd().resolve()
    if rendered_again_by_cruft(answers, project_dir):
        return
    committed = chosen(answers.get("git_init", False)) and git_first_commit(answers, project_dir)
    print(next_steps(answers, project_dir, committed))


def main() -> int:
    answers = json.loads(ANSWERS_JSON)
    prune_unchosen(answers)
    first_time_steps(answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
