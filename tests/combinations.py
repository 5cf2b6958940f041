"""Named combinations of the template's options: each renders, installs, lints and is tested.

Free-text answers (names, quotes, unicode) are in conftest.ANSWER_SETS; these are the choices
and switches of cookiecutter.json. Together the combinations cover every value of every option.
"""

from __future__ import annotations

OPTIONS_OFF = {
    "include_slurm": False,
    "include_optuna": False,
    "include_docker": False,
    "ci": "none",
    "license": "proprietary",
}

COMBINATIONS: dict[str, dict[str, object]] = {
    "default": {},
    "minimal": {"logger": "csv", **OPTIONS_OFF},
    "everything": {
        "logger": "wandb",
        "include_slurm": True,
        "include_optuna": True,
        "include_docker": True,
        "ci": "github",
        "license": "Apache-2.0",
        "python_version": "3.13",
    },
    "tensorboard-bsd": {"logger": "tensorboard", "license": "BSD-3-Clause", "python_version": "3.11"},
    "mlflow-no-ci": {"logger": "mlflow", "ci": "none", "include_docker": True, "python_version": "3.12"},
}
