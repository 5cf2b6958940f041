"""Validate the answers before cookiecutter writes anything.

Valid Python before and after rendering: the only Jinja is the JSON of the answers inside a
raw string, parsed in `main()`. Every rejected answer prints one line that names the value, says
why and shows what would be accepted, all at once in question order; cookiecutter then deletes
the project folder it created and prints its own report of the failed hook.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import unicodedata
from email.errors import MessageError
from email.headerregistry import Address

ANSWERS_JSON = r"""{{ cookiecutter | tojson }}"""

SUPPORTED_PYTHON = ("3.10", "3.11", "3.12", "3.13")
# A PEP 508 distribution name that is also a plain folder name.
SLUG_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
# Written in pieces: this file is itself rendered by Jinja.
JINJA_MARKERS = ("{" + "{", "{" + "%")
PACKAGE_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
# The generated code names the package in lines up to 19 characters short of ruff's 110: longer
# names would fail `ruff check` as rendered. The default slug is cut to 30 (+ 'p_').
MAX_PACKAGE_LENGTH = 32
EMAIL_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
WANDB_ENTITY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
WANDB_PROJECT_FORBIDDEN = set("/\\#?%:")
# Import names the generated project depends on: a package with one of these names would shadow it.
DEPENDENCY_MODULES = {
    "hydra",
    "omegaconf",
    "torch",
    "torchmetrics",
    "pytorch_lightning",
    "lightning",
    "wandb",
    "sklearn",
    "numpy",
    "yaml",
    "tests",
    "configs",
}


def check_project_slug(slug: str) -> str | None:
    if not SLUG_RE.fullmatch(slug):
        return (
            f"project_slug {slug!r} is not a valid folder/distribution name: use ASCII letters, "
            "digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. 'my-ml-project')"
        )
    return None


def check_package_name(name: str) -> str | None:
    if not PACKAGE_RE.fullmatch(name):
        return (
            f"package_name {name!r} is not a lowercase Python identifier: use a-z, 0-9 and '_', "
            "not starting with a digit (e.g. 'my_ml_project')"
        )
    if len(name) > MAX_PACKAGE_LENGTH:
        return (
            f"package_name {name!r} is longer than {MAX_PACKAGE_LENGTH} characters: the generated code "
            f"would not pass ruff's line length; pick a shorter one (e.g. {name[:MAX_PACKAGE_LENGTH]!r})"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"package_name {name!r} is a Python keyword: pick another name (e.g. '{name}_ml')"
    if name in sys.stdlib_module_names or name in DEPENDENCY_MODULES:
        return (
            f"package_name {name!r} would shadow the module of that name that the project imports: "
            f"pick another name (e.g. 'my_{name}')"
        )
    return None


def check_python_version(version: str) -> str | None:
    if version not in SUPPORTED_PYTHON:
        return f"python_version {version!r} is not supported: use one of {', '.join(SUPPORTED_PYTHON)}"
    return None


def check_author_email(email: str) -> str | None:
    if not email:
        return None
    if not EMAIL_RE.fullmatch(email):
        return f"author_email {email!r} is not an e-mail address: use 'name@example.com' or leave it empty"
    try:
        # What hatchling does with it when it writes the package metadata (RFC 5322: a non-ASCII
        # domain is fine, a non-ASCII local part is not).
        Address(addr_spec=email)
    except (ValueError, IndexError, MessageError) as error:
        reason = str(error).rstrip(")") or type(error).__name__  # Python's text ends with a stray ")"
        return (
            f"author_email {email!r} cannot go into the package metadata ({reason}): use ASCII before "
            "the @ (e.g. 'zoe@bücher.de'), or leave it empty"
        )
    return None


def check_wandb_entity(entity: str) -> str | None:
    if entity and not WANDB_ENTITY_RE.fullmatch(entity):
        return (
            f"wandb_entity {entity!r} is not a W&B entity name: use lowercase letters, digits, '-' "
            "and '_' (e.g. 'my-team'), or leave it empty for your default entity"
        )
    return None


def check_wandb_project(project: str) -> str | None:
    bad = sorted(WANDB_PROJECT_FORBIDDEN.intersection(project))
    if not project or len(project) > 128 or bad:
        return (
            f"wandb_project {project!r} is not a W&B project name: use 1 to 128 characters without "
            f"{' '.join(sorted(WANDB_PROJECT_FORBIDDEN))} (e.g. 'my-ml-project')"
        )
    return None


def check_project_name(name: str) -> str | None:
    if not name.strip():
        return "project_name is empty: give the project a name (e.g. 'My ML Project')"
    if any(marker in name for marker in JINJA_MARKERS):
        return f"project_name {name!r} contains Jinja markup ({' or '.join(JINJA_MARKERS)}): remove it"
    return None


# Answers typed on one line; a control character or line break in one would be changed or
# split by the files it is written to (cookiecutter rewrites line endings, READMEs are lines).
FREE_TEXT = ("project_name", "description", "author_name", "author_email", "wandb_entity", "wandb_project")
UNPRINTABLE = {"Cc", "Zl", "Zp"}


def check_one_line_text(key: str, value: str) -> str | None:
    bad = next((ch for ch in value if unicodedata.category(ch) in UNPRINTABLE), None)
    if bad is not None:
        return f"{key} {value!r} contains the control character U+{ord(bad):04X}: use one line of text"
    return None


# The checked answers in cookiecutter.json's question order (the JSON the hook gets has its keys
# sorted), each with its own check.
CHECKS = {
    "project_name": check_project_name,
    "project_slug": check_project_slug,
    "package_name": check_package_name,
    "description": None,
    "author_name": None,
    "author_email": check_author_email,
    "python_version": check_python_version,
    "wandb_entity": check_wandb_entity,
    "wandb_project": check_wandb_project,
}


def derived_package_name(slug: str) -> str:
    """cookiecutter.json's default package_name for a slug."""
    return ("p_" if slug[:1].isdigit() else "") + slug.replace("-", "_").replace(".", "_")


# Answers whose default comes from an earlier one: (that answer, the default it gives).
DERIVED = {
    "package_name": ("project_slug", derived_package_name),
    "wandb_project": ("project_slug", str),
}


def check_answer(key: str, value: str) -> str | None:
    """The first problem with one answer, or None."""
    check = CHECKS[key]
    text_problem = check_one_line_text(key, value) if key in FREE_TEXT else None
    return text_problem or (check(value) if check else None)


def validate(answers: dict[str, str]) -> list[str]:
    """One message per rejected answer, in question order. An answer left at the default that a
    rejected earlier answer gave it is not reported again: fixing that one fixes both."""
    problems: dict[str, str] = {}
    for key in CHECKS:
        value = str(answers.get(key, ""))
        source, derive = DERIVED.get(key, ("", None))
        if source in problems and derive and value == derive(str(answers.get(source, ""))):
            continue
        if (problem := check_answer(key, value)) is not None:
            problems[key] = problem
    return list(problems.values())


def main() -> int:
    problems = validate(json.loads(ANSWERS_JSON))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        # Cookiecutter's own report of the failed hook (a traceback) comes after this line.
        which = "the answer" if len(problems) == 1 else f"these {len(problems)} answers"
        print(
            f"Nothing was written: fix {which} above and run cookiecutter again "
            "(its 'Hook script failed' report below only says that this check stopped it).",
            file=sys.stderr,
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
