"""After rendering: drop what the answers did not choose, then the optional first-time steps.

Valid Python before and after rendering: the only Jinja is the JSON of the answers inside a
raw string, parsed in `main()`.
"""

from __future__ import annotations

import json
import sys

ANSWERS_JSON = r"""{{ cookiecutter | tojson }}"""


def prune_unchosen(answers: dict) -> None:
    """Remove the files of options that were not chosen (owned by the options work)."""


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
