"""The README's tables of config groups and experiments list exactly the config files there are."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

PROJECT_DIR = Path(__file__).resolve().parents[1]
CONFIGS = PROJECT_DIR / "configs"
# Hydra's own settings (configs/hydra/default.yaml): not an option a user switches.
NOT_A_CHOICE = {"hydra"}


def table_rows(header: str) -> list[list[str]]:
    """The cells of each row of the README's table whose header line starts with `header`."""
    lines = (PROJECT_DIR / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:  # after the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
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
    assert documented == rendered_groups()


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
    assert documented == {path.stem for path in (CONFIGS / "experiment").glob("*.yaml")}
