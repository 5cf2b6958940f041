"""Bad answers are rejected before anything is written, with one line that says why."""

from __future__ import annotations

import ast
import json
import keyword
import sys
import tomllib

import pytest
import yaml
from conftest import TEMPLATE_DIR, load_hook, run_cookiecutter
from hypothesis import given
from hypothesis import strategies as st
from packaging.requirements import Requirement

sys.path.insert(0, str(TEMPLATE_DIR))
from local_extensions import chosen, quoted

pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")

BAD_ANSWERS = {
    "package-leading-digit": ("package_name", "3d_vision", "not a lowercase Python identifier"),
    "package-with-dash": ("package_name", "my-pkg", "not a lowercase Python identifier"),
    "package-keyword": ("package_name", "class", "is a Python keyword"),
    "package-shadows-torch": ("package_name", "torch", "would shadow the module"),
    "package-shadows-stdlib": ("package_name", "json", "would shadow the module"),
    "package-too-long": ("package_name", "a" * 33, "is longer than 32 characters"),
    "slug-with-space": ("project_slug", "my project", "not a valid folder/distribution name"),
    "slug-with-slash": ("project_slug", "a/b", "not a valid folder/distribution name"),
    "slug-trailing-dash": ("project_slug", "bad-", "not a valid folder/distribution name"),
    "email-without-at": ("author_email", "nobody", "not an e-mail address"),
    "email-non-ascii-local-part": ("author_email", "zoë@example.org", "cannot go into the package metadata"),
    "wandb-entity-uppercase": ("wandb_entity", "My Team", "not a W&B entity name"),
    "wandb-project-slash": ("wandb_project", "a/b", "not a W&B project name"),
    "project-name-blank": ("project_name", "   ", "project_name is empty"),
    "description-line-break": ("description", "two\nlines", "contains the control character U+000A"),
}


@pytest.mark.parametrize(("key", "value", "reason"), BAD_ANSWERS.values(), ids=BAD_ANSWERS)
def test_bad_answer_is_rejected_with_one_line_and_nothing_written(tmp_path, key, value, reason):
    result = run_cookiecutter(tmp_path, f"{key}={value}")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: {key} {value!r}" if key != "project_name" else "error: project_name")
    assert reason in errors[0]
    assert "e.g." in errors[0] or "use " in errors[0]
    # Nothing is left, except that for a slug with '/' cookiecutter has already created the
    # empty parent folder before the hook runs; it removes only the project folder itself.
    leftovers = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))
    assert leftovers == (["a"] if value == "a/b" and key == "project_slug" else [])


# Given on the command line out of question order; reported in question order, one line each.
SEVERAL_BAD_ANSWERS = {
    "wandb_project": "a/b",
    "author_email": "nobody",
    "description": "two\nlines",
    "package_name": "class",
    "project_name": "   ",
}


def error_keys(stderr: str) -> list[str]:
    return [line.split()[1] for line in stderr.splitlines() if line.startswith("error: ")]


def test_every_bad_answer_is_reported_at_once_in_question_order(tmp_path):
    result = run_cookiecutter(tmp_path, *(f"{key}={value}" for key, value in SEVERAL_BAD_ANSWERS.items()))
    assert result.returncode == 1
    questions = list(json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text()))
    assert error_keys(result.stderr) == sorted(SEVERAL_BAD_ANSWERS, key=questions.index)
    assert result.stderr.splitlines()[-1].startswith("Nothing was written: fix these 5 answers above")
    # What the template README promises comes after: cookiecutter's own report, on stdout.
    assert "Stopping generation because pre_gen_project hook script didn't exit successfully" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "Hook script failed (exit status: 1)"
    assert list(tmp_path.iterdir()) == []


# name: (answers, the keys reported)
DERIVED_ANSWERS = {
    "defaults-of-a-bad-slug-not-repeated": (["project_slug=my project"], ["project_slug"]),
    "own-bad-package-still-reported": (
        ["project_slug=my project", "package_name=my-pkg"],
        ["project_slug", "package_name"],
    ),
}


@pytest.mark.parametrize(("answers", "reported"), DERIVED_ANSWERS.values(), ids=DERIVED_ANSWERS)
def test_answer_left_at_the_default_of_a_rejected_one_is_not_reported_again(tmp_path, answers, reported):
    result = run_cookiecutter(tmp_path, *answers)
    assert result.returncode == 1
    assert error_keys(result.stderr) == reported


def test_checked_answers_are_cookiecutter_jsons_questions_in_its_order():
    questions = [key for key in json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text()) if key[0] != "_"]
    assert list(pre_gen.CHECKS) == [key for key in questions if key in pre_gen.CHECKS]
    assert set(pre_gen.FREE_TEXT) <= set(pre_gen.CHECKS)


@pytest.mark.parametrize("slug", ["3d.vision-kit", "my project", "a/b"])
def test_hook_derives_the_defaults_cookiecutter_json_gives(slug):
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    context = generate_context(str(TEMPLATE_DIR / "cookiecutter.json"), extra_context={"project_slug": slug})
    answers = prompt_for_config(context, no_input=True)
    for key, (source, derive) in pre_gen.DERIVED.items():
        assert derive(answers[source]) == answers[key]


# A value outside a choice list, or not a yes/no for a switch, is refused by cookiecutter itself,
# in generate_context, before any template code (extension, pre-generation hook) runs: it exits
# with status 1 and a traceback ending in one ValueError line, and the template cannot shorten
# it. What is tested is what a user gets: non-zero, nothing on disk, a last line naming the value.
# name: (answer, what the last line says)
INVALID_CHOICES = {
    "python-too-old": ("python_version=3.9", "3.9 provided for choice variable python_version"),
    "python-not-a-version": ("python_version=latest", "latest provided for choice variable python_version"),
    "unknown-license": ("license=GPL", "GPL provided for choice variable license"),
    "unknown-ci": ("ci=gitlab", "gitlab provided for choice variable ci"),
    "switch-not-yes-or-no": ("include_slurm=maybe", "maybe provided for variable include_slurm"),
}


@pytest.mark.parametrize(("answer", "message"), INVALID_CHOICES.values(), ids=INVALID_CHOICES)
def test_invalid_choice_is_refused_by_cookiecutter_before_anything_is_written(tmp_path, answer, message):
    result = run_cookiecutter(tmp_path, answer)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"ValueError: {message}")
    assert list(tmp_path.iterdir()) == []


def test_pre_generation_check_still_names_the_supported_pythons():
    # Reached only when cookiecutter.json's choices and SUPPORTED_PYTHON disagree.
    assert (
        pre_gen.check_python_version("3.9")
        == "python_version '3.9' is not supported: use one of 3.10, 3.11, 3.12, 3.13"
    )
    assert (
        list(pre_gen.SUPPORTED_PYTHON)
        == json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())["python_version"]
    )


def test_no_input_render_never_prompts(tmp_path):
    # stdin is closed: a prompt would fail instead of waiting.
    result = run_cookiecutter(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "my-ml-project" / "train.py").is_file()


def test_failed_overwrite_keeps_the_existing_project(tmp_path):
    existing = tmp_path / "my-ml-project"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    result = run_cookiecutter(tmp_path, "package_name=class", extra=("--overwrite-if-exists",))
    assert result.returncode != 0
    assert (existing / "notes.txt").read_text() == "mine"


def test_default_answers_pass_validation():
    defaults = {
        "project_name": "My ML Project",
        "project_slug": "my-ml-project",
        "package_name": "my_ml_project",
        "python_version": "3.10",
        "author_email": "you@example.com",
        "wandb_entity": "",
        "wandb_project": "my-ml-project",
    }
    assert pre_gen.validate(defaults) == []


identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,30}", fullmatch=True)


@given(identifiers)
def test_package_names_accepted_are_importable_and_unshadowed(name):
    accepted = pre_gen.check_package_name(name) is None
    expected = not (
        keyword.iskeyword(name)
        or keyword.issoftkeyword(name)
        or name in sys.stdlib_module_names
        or name in pre_gen.DEPENDENCY_MODULES
    )
    assert accepted == expected
    if accepted:
        assert name.isidentifier()


@given(st.text(max_size=40))
def test_accepted_slugs_are_valid_distribution_names(slug):
    if pre_gen.check_project_slug(slug) is None:
        assert Requirement(slug).name == slug
        assert "/" not in slug and "\\" not in slug and slug.strip() == slug


@given(st.text())
def test_quoted_text_means_the_same_in_python_toml_and_yaml(text):
    literal = quoted(text)
    assert ast.literal_eval(literal) == text
    assert tomllib.loads(f"value = {literal}")["value"] == text
    assert yaml.safe_load(f"value: {literal}")["value"] == text


# The answer as the hook gets it (cookiecutter.json's booleans, or text from cruft or an older
# cookiecutter): whether the part stays.
SWITCH_ANSWERS = {
    "json-true": (True, True),
    "json-false": (False, False),
    "text-True": ("True", True),
    "text-false": ("false", False),
    "text-no": ("no", False),
    "ci-github": ("github", True),
    "ci-none": ("none", False),
}


@pytest.mark.parametrize(("answer", "kept"), SWITCH_ANSWERS.values(), ids=SWITCH_ANSWERS)
def test_prune_keeps_a_part_exactly_when_its_answer_chooses_it(tmp_path, answer, kept):
    answers = {"package_name": "pkg", "license": "MIT"} | {option: True for option in post_gen.OPTIONAL_PARTS}
    answers["include_slurm"] = answers["ci"] = answer
    for relative in post_gen.OPTIONAL_PARTS["include_slurm"] + (".github/workflows/ci.yml", "licenses/MIT"):
        (tmp_path / relative.replace("PKG", "pkg")).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative.replace("PKG", "pkg")).write_text("x")
    assert chosen(answer) == post_gen.chosen(answer) == kept  # README/pyproject blocks agree
    post_gen.prune_unchosen(answers, tmp_path)
    assert (tmp_path / "src/pkg/addons/slurm.py").exists() == kept
    assert (tmp_path / "configs/hydra/launcher/slurm.yaml").exists() == kept
    assert (tmp_path / ".github").exists() == kept
    assert (tmp_path / "LICENSE").read_text() == "x" and not (tmp_path / "licenses").exists()
