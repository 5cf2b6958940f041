"""After rendering: drop what the answers did not choose, then the optional first-time steps.

Valid Python before and after rendering: the only Jinja is the JSON of the answers inside a
raw string, parsed in `main()`.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ANSWERS_JSON = r"""{{ cookiecutter | tojson }}"""


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


def first_time_steps(answers: dict) -> None:
    """git init and a first commit if asked, and the next-steps message (owned by the update work)."""
    slug = answers["project_slug"]
    print(
        f"\nCreated {slug}. Next:\n"
        f"  cd {slug}\n"
        "  pip install -e '.[dev]'\n"
        "  python train.py                    # digits + MLP, offline-safe\n"
        "  python train.py +experiment=aplite\n"
    )


def main() -> int:
    answers = json.loads(ANSWERS_JSON)
    prune_unchosen(answers)
    first_time_steps(answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
