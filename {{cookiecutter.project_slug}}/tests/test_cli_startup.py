"""What train.py does before a job: `--help` and tab completion (the user's choices, the composed
config, no internal groups) and reading `.env`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from conftest import CONFIG_DIR, EXPERIMENTS, PROJECT_DIR, run_script
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.object_type import ObjectType

from {{ cookiecutter.package_name }}.cli import load_env_file
from {{ cookiecutter.package_name }}.cli_help import INTERNAL_GROUPS, group_options


def hydra_groups() -> dict[str, list[str]]:
    """Every config group and its options as Hydra's own `--help` finds them."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()

        def walk(parent: str) -> Iterator[tuple[str, list[str]]]:
            for group in loader.list_groups(parent):
                name = f"{parent}/{group}" if parent else group
                if options := loader.get_group_options(name, ObjectType.CONFIG):
                    yield name, sorted(options)
                yield from walk(name)

        return dict(walk(""))


def help_of(*args: str, script: str = "train.py") -> str:
    result = run_script(script, *args, "--help", cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def listed_groups(help_text: str) -> dict[str, str]:
    """`group: option, option*` lines of the help's groups section, as {group: options}."""
    section = help_text.split("== Configuration groups ==")[1].split("== Config ==")[0]
    return dict(re.findall(r"^([+\w/]+): (.+)$", section, flags=re.MULTILINE))


def test_help_groups_are_hydras_own_but_the_internal_ones():
    hydra = {
        group: options
        for group, options in hydra_groups().items()
        if group.split("/")[0] not in INTERNAL_GROUPS
    }
    assert group_options(CONFIG_DIR) == hydra
    assert "dataset_model" in hydra_groups()  # what the help hides


def test_help_offers_each_group_and_experiment_but_not_dataset_model():
    text = help_of()
    listed = listed_groups(text)
    assert listed["+experiment"] == ", ".join(EXPERIMENTS)
    assert listed["model"].replace("*", "") == ", ".join(
        options for options in group_options(CONFIG_DIR)["model"]
    )
    assert "dataset_model" not in text
    assert "--hydra-help" in text


def test_eval_help_offers_a_logger_to_add_and_no_training_groups():
    listed = listed_groups(help_of(script="eval.py"))
    assert "+logger" in listed
    assert "model" not in listed
    assert "+experiment" not in listed


@pytest.mark.parametrize(
    ("override", "group", "chosen", "config_line"),
    [
        ("model=resnet", "model", "resnet", "models.resnet.ResNet"),
        (f"+experiment={EXPERIMENTS[0]}", "+experiment", EXPERIMENTS[0], "max_epochs:"),
    ],
    ids=["group option", "experiment"],
)
def test_help_shows_the_config_composed_with_the_overrides(override, group, chosen, config_line):
    text = help_of(override)
    assert f"{chosen}*" in listed_groups(text)[group].split(", ")
    assert config_line in text.split("== Config ==")[1]


def test_help_with_a_bad_override_is_one_error_line():
    result = run_script("train.py", "model=nosuch", "--help", cwd=PROJECT_DIR)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: model=nosuch: no such option;")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("shell", "line"),
    [
        ("bash", "python train.py "),
        ("bash", "python train.py data"),
        ("bash", "python train.py +"),
        ("fish", "train.py "),
    ],
)
def test_tab_completion_does_not_offer_dataset_model(shell, line):
    env = {"COMP_LINE": line, "COMP_POINT": str(len(line))}
    result = run_script("train.py", "-sc", f"query={shell}", cwd=PROJECT_DIR, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    words = result.stdout.split()
    assert len(result.stdout.splitlines()) == (1 if shell == "bash" else len(words))
    assert any(word.lstrip("+").startswith("dataset") for word in words), words
    assert not any("dataset_model" in word for word in words), words


def test_env_file_in_a_parent_dir_is_read_and_set_variables_win(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("STARTUP_TEST_FROM_FILE=file\nSTARTUP_TEST_SET=file\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    monkeypatch.setenv("STARTUP_TEST_SET", "shell")
    monkeypatch.delenv("STARTUP_TEST_FROM_FILE", raising=False)
    load_env_file()
    assert os.environ["STARTUP_TEST_FROM_FILE"] == "file"
    assert os.environ["STARTUP_TEST_SET"] == "shell"


def test_startup_benchmark_prints_a_table_with_ratios_to_the_floor():
    result = run_script("benchmarks/startup.py", "--repeats", "1", cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and line.endswith("x |")]
    assert len(rows) == 8 and "(floor)" in rows[0] and " 1.00x " in rows[0]
    assert any("`python train.py --help`" in row for row in rows)
