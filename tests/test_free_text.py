"""Any free-text answer renders a valid project or is refused by the pre-generation hook.

Hypothesis draws the free-text answers (project name, description, author, e-mail, W&B
project) from quotes, backslashes, unicode, Jinja-like braces, very long strings, leading
digits and Python keywords. Each example is rendered with the cookiecutter command line, as a
user would. Either the render is valid (every .py compiles and passes ruff, every
YAML/TOML/JSON file parses, pyproject.toml holds the answers unchanged, and no template markup
is left) or it is refused with one `error:` line and leaves nothing on disk. A few fixed hard
answer sets are also installed from a wheel and run from another dir.
"""

from __future__ import annotations

import ast
import json
import keyword
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from conftest import TEMPLATE_DIR, jinja_left_in, run_cookiecutter
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(TEMPLATE_DIR))
from local_extensions import quoted

QUESTIONS = list(json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text()))
AWKWARD = ['"', "'", "\\", "{{", "{%", "}}", "%}", "{#", "#", ": ", "- ", "é", "東京", "🚀", "\u200b"]
# Printable text a command line can carry: no NUL, lone surrogates, control characters or line
# breaks (those come on their own below, to be refused).
printable = st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"])
BREAKS = ["\t", "\r", "\n", "\x07", "\x85", "\u2028"]


def text_of(pieces: list[str], min_size: int = 0) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(pieces), st.text(printable, max_size=6))
    short = st.lists(piece, min_size=min_size, max_size=8)
    return st.one_of(short.map("".join), st.text(printable, min_size=300, max_size=600))  # very long


awkward_text = text_of(AWKWARD)
with_break = st.builds("{}{}{}".format, awkward_text, st.sampled_from(BREAKS), awkward_text)
free_text = st.one_of(awkward_text, awkward_text, awkward_text, with_break)
# The hook refuses Jinja markup in the name; it gets its own share below.
name_text = text_of([piece for piece in AWKWARD if piece not in ("{{", "{%")], min_size=1)
# W&B refuses / \\ # ? % : in project names (the hook says so); mostly draw names it takes.
wandb_text = st.one_of(text_of([p for p in AWKWARD if not set(p) & set("/\\#?%:")], min_size=1), free_text)
names = st.one_of(
    name_text,
    name_text,
    name_text,
    free_text,
    st.sampled_from(keyword.kwlist + keyword.softkwlist),  # a keyword becomes the package name
    st.builds("{} {}".format, st.integers(0, 999), name_text),  # leading digits
)
label = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=12)
ascii_label = st.from_regex(r"[a-z0-9._+-]{1,12}", fullmatch=True)
emails = st.one_of(
    st.just(""),
    st.builds("{}@{}.{}".format, ascii_label, label, label),  # non-ASCII domains: valid
    st.builds("{}@{}.{}".format, label, label, label),  # non-ASCII local parts: refused
    awkward_text,
)
answers = st.fixed_dictionaries(
    {},
    optional={
        "project_name": names,
        "description": free_text,
        "author_name": free_text,
        "author_email": emails,
        "wandb_project": wandb_text,
    },
)
# Hard answer sets that must also install: tests/test_install.py builds each into a wheel.
HARD_ANSWERS: dict[str, dict[str, str]] = {
    "jinja-quotes-backslashes": {
        "project_name": "Braces & Backslashes \\ 'q' \"dq\"",
        "description": "{{ 7 * 7 }} stays as typed, so do x {{ y and {% raw %}",
        "author_name": "O'Brien \\ {#",
    },
    "long-name-leading-digit": {"project_name": "2" + " very long project name" * 6, "author_email": ""},
    "non-ascii-email": {
        "project_name": "Für Élise ✓ 東京",
        "author_email": "zoe@bücher.de",
        "wandb_project": "Ünïcode ✓ {braces}",
    },
}


def render(tmp: Path, answers: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return run_cookiecutter(tmp, *(f"{key}={value}" for key, value in answers.items()))


def without_answers(text: str, answers: dict[str, str]) -> str:
    """`text` with every answer cut out, as written raw (README) or quoted (TOML, YAML, Python)."""
    for value in sorted(answers.values(), key=len, reverse=True):
        if value:
            text = text.replace(quoted(value)[1:-1], "").replace(value, "")
    return text


def check_valid_project(project: Path, answers: dict[str, str]) -> None:
    for path in project.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text()
        if path.suffix == ".py":
            ast.parse(text, filename=str(path))
        elif path.suffix in {".yaml", ".yml"}:
            yaml.safe_load(text)
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".json":
            json.loads(text)
        leftover = without_answers(text, answers)
        assert not jinja_left_in(leftover), path
    for check in (["check"], ["format", "--check"]):
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", *check, "--no-cache", "--quiet", "."],
            cwd=project,
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert meta["description"] == answers.get("description", meta["description"])
    assert meta["authors"][0]["name"] == answers.get("author_name", meta["authors"][0]["name"])
    assert meta["authors"][0].get("email", "") == answers.get("author_email", "you@example.com")
    if "project_name" in answers:
        assert answers["project_name"] in (project / "README.md").read_text()


def check_refused(result: subprocess.CompletedProcess[str], out: Path) -> None:
    # One line per rejected answer, all of them, in question order.
    keys = [line.split()[1] for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert keys and keys == sorted(set(keys), key=QUESTIONS.index), result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert list(out.iterdir()) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=answers)
@example(answers=HARD_ANSWERS["jinja-quotes-backslashes"])
@example(answers=HARD_ANSWERS["long-name-leading-digit"])
@example(answers=HARD_ANSWERS["non-ascii-email"])
@example(answers={"description": "x {{ y"})  # unbalanced Jinja: once a cookiecutter traceback
@example(answers={"description": "{{ 7 * 7 }}", "author_name": "{% raw %}"})  # once rendered as 49
@example(answers={"author_email": "zoë@bücher.de", "project_name": "for"})  # local part: refused
@example(answers={"project_name": "9 lives \\ \"quoted\" 'single' 🚀", "wandb_project": "{#"})
def test_free_text_answers_render_a_valid_project_or_are_refused(tmp_path, answers):
    out = tmp_path / "out"
    result = render(out, answers)
    if result.returncode != 0:
        check_refused(result, out)
        event(f"refused: {result.stderr.split('error: ')[-1].split()[0]}")
        return
    event("rendered")
    (project,) = out.iterdir()
    check_valid_project(project, answers)
