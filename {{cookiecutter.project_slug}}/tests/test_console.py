"""What `python train.py` shows on the console, piped (CI, a batch job, a file) and on a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from conftest import CONFIG_DIR, PROJECT_DIR, run_script, script_env
from hydra import initialize_config_dir

from {{ cookiecutter.package_name }}.utils.console import changed_values

OVERRIDES = ("trainer.max_epochs=1", "optimizer.lr=0.002", "seed=7")
# A short run: enough batches to train, validate and test.
SHORT = ("trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1")


@pytest.fixture(scope="module")
def piped(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A default 1-epoch run, W&B offline, its output to pipes: its run dir and result."""
    run_dir = tmp_path_factory.mktemp("console") / "run"
    result = run_script("train.py", *OVERRIDES, f"hydra.run.dir={run_dir}", cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


@pytest.fixture(scope="module")
def piped_run(piped) -> tuple[Path, list[str]]:
    """The run dir and every line of stdout and stderr."""
    run_dir, result = piped
    return run_dir, (result.stdout + result.stderr).splitlines()


def top_level_lines(config_yaml: Path) -> list[str]:
    """`dataset:`, `model:`, ..., `seed: 7`: the unindented lines of a config file."""
    return [line for line in config_yaml.read_text().splitlines() if line and not line[0].isspace()]


def test_full_config_goes_to_the_run_dir_and_train_log_not_the_console(piped_run):
    run_dir, console = piped_run
    full = top_level_lines(run_dir / ".hydra" / "config.yaml")
    assert "seed: 7" in full and len(full) > 10
    log_lines = (run_dir / "train.log").read_text().splitlines()
    assert all(line in log_lines for line in full)
    assert not any(line in console for line in full)
    assert not any("_target_:" in line for line in console)


def test_console_names_the_options_and_the_values_changed(piped_run):
    run_dir, console = piped_run
    options = next(line for line in console if line.startswith("Options: ")).split()[1:]
    assert {"dataset=digits", "model=mlp", "logger=wandb", "trainer=default"} <= set(options)
    changed = console[console.index("Changed from the defaults:") + 1 :]
    assert changed[:5] == [
        "  optimizer.lr=0.002",
        "  trainer.max_epochs=1",
        "  seed=7",
        f"Run dir: {run_dir}",
        f"Full config: {run_dir}/.hydra/config.yaml",
    ]


def test_console_is_short_and_lightning_details_stay_in_train_log(piped_run):
    run_dir, console = piped_run
    assert len(console) < 40, "\n".join(console)
    assert not any("\x1b[" in line or "├──" in line for line in console)  # plain text, no rich
    log_text = (run_dir / "train.log").read_text()
    for detail in ("GPU available:", "Total params", "Restoring states from the checkpoint"):
        assert detail in log_text and not any(detail in line for line in console), detail
    assert not any("Test metric" in line for line in console)  # Lightning's table: the summary has them


def test_wandb_says_one_line_by_default(piped_run):
    run_dir, console = piped_run
    assert not [line for line in console if line.startswith("wandb:")]
    (status,) = [line for line in console if line.startswith("W&B:")]
    assert status.startswith(
        f"W&B: logging offline; upload it later with `wandb sync {run_dir}/wandb/offline-run-"
    )


def test_summary_gives_scores_run_dir_checkpoint_resume_and_sync(piped):
    run_dir, result = piped
    summary = dict(re.split(r":\s+", line, maxsplit=1) for line in result.stdout.splitlines()[-5:])
    assert set(summary) == {"Done", "Run dir", "Best checkpoint", "Resume", "W&B sync"}
    assert "test/acc=" in summary["Done"] and "val/acc_best=" in summary["Done"]
    assert summary["Run dir"].startswith(f"{run_dir} ")
    assert summary["Best checkpoint"] == f"{run_dir}/checkpoints/best.ckpt"
    assert summary["Resume"] == f"python train.py resume={run_dir}"
    (offline_run,) = (run_dir / "wandb").glob("offline-run-*")
    assert summary["W&B sync"] == f"wandb sync {offline_run}"


def test_changed_values_are_the_overrides_and_what_an_experiment_changes(compose_config, tmp_path):
    cfg = compose_config("+experiment=resnet_digits", "optimizer.lr=0.002")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        changed = changed_values(cfg)
    # The experiment's model=resnet is an option: resnet's own values are its defaults.
    assert changed == {
        "dataset.augment.crop_padding": 1,
        "optimizer.lr": 0.002,
        "trainer.max_epochs": 40,
        "callbacks.early_stopping.patience": 40,
        "tags": ["digits", "resnet"],
        "notes": "the most accurate digits setup shipped",
        "paths.root_dir": str(tmp_path),
    }


def test_wandb_switch_brings_back_its_own_output(tmp_path):
    args = (*SHORT, "test=false", "logger.wandb.settings.silent=false", f"hydra.run.dir={tmp_path}")
    result = run_script("train.py", *args, cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wandb: Run history:" in result.stderr and "wandb: Run summary:" in result.stderr


def run_on_terminal(*args: str, columns: int = 200) -> str:
    """`python <args>` on a pseudo-terminal `columns` wide; what it printed, without colours
    and the spaces rich pads lines with."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=PROJECT_DIR,
        # rich reads the size from COLUMNS first; a pytest-xdist worker leaves one of 80 behind.
        env=script_env({"COLUMNS": str(columns), "LINES": "50"}),
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    output = bytearray()
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: every process holding the terminal has ended
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert process.wait(timeout=600) == 0, output.decode(errors="replace")[-3000:]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", output.decode(errors="replace"))
    return "\n".join(line.rstrip() for line in text.splitlines())


def test_terminal_shows_a_config_tree_and_a_summary_table(tmp_path):
    text = run_on_terminal("train.py", *SHORT, "logger=csv", "seed=7", f"hydra.run.dir={tmp_path}")
    assert f"Run dir {tmp_path}" in text
    assert re.search(r"^├── model mlp \([\d,]+ parameters\)$", text, re.MULTILINE)
    assert re.search(
        r"^│   ├── max_epochs = 1\n│   ├── limit_train_batches = 2\n│   └── limit_val_batches = 1$",
        text,
        re.MULTILINE,
    )
    assert re.search(r"^├── seed = 7$", text, re.MULTILINE)
    assert re.search(rf"^Resume +python train.py resume={tmp_path}$", text, re.MULTILINE)
    assert "Options: " not in text  # the plain view is for train.log
    log_text = (tmp_path / "train.log").read_text()
    assert "Options: dataset=digits" in log_text
    assert re.search(rf"^Resume: +python train.py resume={tmp_path}$", log_text, re.MULTILINE)
