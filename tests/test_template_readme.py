"""The template's README says what cookiecutter.json and a real rendering are."""

from __future__ import annotations

import importlib.util
import json
import re

from conftest import TEMPLATE_DIR, run_cookiecutter

spec = importlib.util.spec_from_file_location("readme_layout", TEMPLATE_DIR / "scripts" / "readme_layout.py")
assert spec and spec.loader
readme_layout = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_layout)

README = (TEMPLATE_DIR / "README.md").read_text()


def option_rows() -> dict[str, list[str]]:
    """Variable -> the other cells of its row in the README's option table."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| variable | default |"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        name, *cells = (cell.strip() for cell in line.strip("|").split("|"))
        rows[name.strip("`")] = cells
    return rows


def test_readme_tree_is_what_a_default_rendering_gives():
    assert readme_layout.readme_tree(README) == readme_layout.rendered_tree()


def test_option_table_has_every_question_with_its_default_and_choices():
    questions = {
        key: value
        for key, value in json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text()).items()
        if not key.startswith("_")
    }
    rows = option_rows()
    assert list(rows) == list(questions)
    for key, value in questions.items():
        default, choices = rows[key][0], rows[key][1]
        if isinstance(value, list):
            assert default == f"`{value[0]}`", key
            assert re.findall(r"`([^`]+)`", choices) == value, key
        elif isinstance(value, bool):
            assert default == f"`{str(value).lower()}`", key
            assert choices == "`true`, `false`", key
        elif value == "":
            assert default.startswith("empty"), key
        elif "{{" not in value:
            shown = default.strip("`").removesuffix("...").strip()
            assert value.startswith(shown) and shown, key


def test_readme_shows_exactly_what_rejected_answers_print(tmp_path):
    block = re.search(r"```text\n(error: package_name 'class'.*?)```", README, re.DOTALL)
    assert block, "the README's example of rejected answers is gone"
    shown = block.group(1).splitlines()
    result = run_cookiecutter(tmp_path, "package_name=class", "author_email=nobody")
    assert result.returncode == 1
    stderr, stdout = result.stderr.splitlines(), result.stdout.strip().splitlines()
    assert shown[:3] == stderr
    assert shown[3:5] == stdout[:2]
    assert shown[-2:] == stdout[-2:]
