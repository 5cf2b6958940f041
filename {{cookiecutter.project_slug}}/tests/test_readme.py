"""The README's tables of config groups and experiments list exactly the config files there are,
and the commands of its speed tables run configs that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[1]
CONFIGS = PROJECT_DIR / "configs"
# Hydra's own settings (configs/hydra/default.yaml): not an option a user switches.
NOT_A_CHOICE = {"hydra"}


def tables(header: str) -> list[list[list[str]]]:
    """The cells of each row of every README table whose header line starts with `header`."""
    lines = (PROJECT_DIR / "README.md").read_text().splitlines()
    found = []
    for start in (i for i, line in enumerate(lines) if line.startswith(header)):
        rows = []
        for line in lines[start + 2 :]:  # after the header and its |---| line
            if not line.startswith("|"):
                break
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        found.append(rows)
    return found


def table_rows(header: str) -> list[list[str]]:
    """The rows of the README's one table whose header line starts with `header`."""
    (rows,) = tables(header)
    return rows


def documented_groups() -> dict[str, list[tuple[str, bool]]]:
    """Group -> [(option, marked "(default)")] from the configuration table."""
    return {
        group.strip("`"): [
            (name, bool(mark)) for name, mark in re.findall(r"`([^`]+)`( \(default\))?", cells)
        ]
        for group, cells, *_ in table_rows("| group | options |")
    }


def rendered_groups() -> dict[str, set[str]]:
    """Group -> option names, from every folder of configs/ that holds YAML files."""
    groups: dict[str, set[str]] = {}
    for path in CONFIGS.rglob("*.yaml"):
        group = path.parent.relative_to(CONFIGS).as_posix()
        if group != "." and group not in NOT_A_CHOICE:
            groups.setdefault(group, set()).add(path.stem)
    return groups


def test_config_table_lists_every_group_and_option_there_is_and_no_other():
    documented = {group: {name for name, _ in options} for group, options in documented_groups().items()}
    rendered = rendered_groups()
    missing = {group: sorted(names - documented.get(group, set())) for group, names in rendered.items()}
    missing = {group: names for group, names in missing.items() if names}
    assert not missing, f"add these options to the README's table under ## Configuration: {missing}"
    assert documented == rendered


def test_config_table_marks_the_defaults_of_config_yaml():
    defaults = {}
    for entry in yaml.safe_load((CONFIGS / "config.yaml").read_text())["defaults"]:
        if isinstance(entry, dict):
            ((group, option),) = entry.items()
            defaults[group] = option
    for group, options in documented_groups().items():
        marked = [name for name, is_default in options if is_default]
        if marked or defaults.get(group, "default") != "default":
            assert marked == [defaults.get(group)], group


def test_experiment_table_lists_every_experiment_file_and_no_other():
    documented = {name.strip("`") for name, *_ in table_rows("| experiment |")}
    rendered = {path.stem for path in (CONFIGS / "experiment").glob("*.yaml")}
    assert not rendered - documented, (
        f"add a row for {sorted(rendered - documented)} to the README's table under ### Experiments"
    )
    assert documented == rendered


# `python train.py ...` in the first column of the README's speed tables (`| command | ...`).
SPEED_COMMANDS = [
    row[0].strip("`")
    for rows in tables("| command |")
    for row in rows
    if row[0].startswith("`python train.py")
]


def test_readme_has_a_speed_table():
    assert SPEED_COMMANDS


@pytest.mark.parametrize("command", SPEED_COMMANDS)
def test_speed_table_command_runs_configs_that_exist(compose_config, command):
    compose_config(*shlex.split(command)[2:])


def test_benchmark_scripts_the_readme_names_exist():
    named = set(re.findall(r"python (benchmarks/\w+\.py)", (PROJECT_DIR / "README.md").read_text()))
    assert named and {name for name in named if not (PROJECT_DIR / name).is_file()} == set()
