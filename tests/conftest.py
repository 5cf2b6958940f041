"""Shared answers and helpers for rendering the template in tests."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

TEMPLATE_DIR = Path(__file__).resolve().parents[1]

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
