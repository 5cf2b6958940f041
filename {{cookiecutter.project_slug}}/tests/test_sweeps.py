"""Sweep files drive train.py as `wandb agent` would, online or through the offline runner."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_DIR, run_script
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from {{ cookiecutter.package_name }}.agent_args import hydra_overrides
from {{ cookiecutter.package_name }}.sweep import agent_command

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import sweeps

SWEEP_FILES = {
    path.relative_to(PROJECT_DIR).as_posix(): path
    for path in [PROJECT_DIR / "sweep.yaml", *sorted((PROJECT_DIR / "sweeps").glob("*.yaml"))]
}
# Metrics train.py logs at every validation, which W&B can rank runs and stop runs by.
LOGGED_METRICS = {"val/acc", "val/acc_best", "val/loss"}
BUDGET = ["trainer.max_epochs=1", "logger=csv"]
RUNNER = "{{ cookiecutter.package_name }}.sweep"


def load(name: str) -> dict:
    return yaml.safe_load(SWEEP_FILES[name].read_text())


def overrides_for(sweep: dict, params: dict) -> list[str]:
    """The Hydra overrides train.py ends up with for these parameters under `wandb agent`."""
    command = agent_command(sweep, params)
    return hydra_overrides(command[command.index(sweep["program"]) + 1 :])


@pytest.mark.parametrize("name", SWEEP_FILES)
def test_sweep_file_is_valid_for_wandb(name):
    sweep = load(name)
    assert sweeps.schema_violations_from_proposed_config(sweep) == []
    assert sweep["program"] == "train.py" and (PROJECT_DIR / sweep["program"]).is_file()
    assert sweep["command"] == ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"]
    assert sweep["metric"]["name"] in LOGGED_METRICS


@pytest.mark.parametrize("name", SWEEP_FILES)
def test_proposed_trials_compose_with_every_value_in_place(compose_config, name):
    sweep, runs = load(name), []
    for _ in range(4):
        proposal = sweeps.next_run(sweep, runs)
        runs.append(
            sweeps.SweepRun(
                config=proposal.config,
                state=sweeps.RunState.finished,
                summary_metrics={sweep["metric"]["name"]: 0.5},
            )
        )
        params = {
            key: spec["value"].item() if hasattr(spec["value"], "item") else spec["value"]
            for key, spec in proposal.config.items()
        }
        cfg = compose_config(*overrides_for(sweep, params))
        choices = HydraConfig.get().runtime.choices
        for key, value in params.items():
            if key in choices or key == "experiment":
                assert choices.get(key) == value
            else:
                assert OmegaConf.to_container(cfg, resolve=True) and OmegaConf.select(cfg, key) == value


AGENT_VALUES = {
    "float": ("optimizer.lr", 1e-05),
    "int": ("seed", 7),
    "bool": ("trainer.deterministic", True),
    "list": ("model.hidden_dims", [64, 32]),
    "string-with-spaces": ("logger.wandb.name", "lr sweep  run 1"),
    "none": ("logger.wandb.group", None),
}


@pytest.mark.parametrize(("key", "value"), AGENT_VALUES.values(), ids=AGENT_VALUES)
def test_values_rendered_by_the_agent_arrive_intact(compose_config, key, value):
    args = create_sweep_command_args({"args": {key: {"value": value}}})["args_no_hyphens"]
    cfg = compose_config(*hydra_overrides(args))
    assert OmegaConf.select(cfg, key) == value


@pytest.mark.parametrize(("experiment", "expected_model"), [("aplite", "alexnet"), (None, "mlp")], ids=str)
def test_sweeping_over_experiment_works_without_a_plus(compose_config, experiment, expected_model):
    args = create_sweep_command_args({"args": {"experiment": {"value": experiment}}})["args_no_hyphens"]
    assert args == [f"experiment={experiment}"]
    compose_config(*hydra_overrides(args))
    assert HydraConfig.get().runtime.choices.get("experiment") == experiment
    assert HydraConfig.get().runtime.choices["model"] == expected_model


def run_sweep(tmp_path: Path, sweep_file: Path, *args: str) -> tuple[str, dict]:
    result = run_script("-m", RUNNER, str(sweep_file), "--dir", str(tmp_path), *args, cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, json.loads((tmp_path / "results.json").read_text())


@pytest.mark.parametrize("name", SWEEP_FILES)
def test_one_trial_of_each_sweep_file_trains(tmp_path, name):
    _, results = run_sweep(tmp_path, SWEEP_FILES[name], "--count", "1", *BUDGET)
    (trial,) = results["trials"]
    # One epoch proves the trial trains and tests; it need not beat chance yet.
    assert trial["state"] == "finished" and trial["metrics"]["global_step"] > 0
    assert 0 <= trial["metrics"]["test/acc"] <= 1


def test_random_sweep_runs_three_trials_and_ranks_them(tmp_path):
    output, results = run_sweep(tmp_path, SWEEP_FILES["sweep.yaml"], "--count", "3", *BUDGET)
    scores = [trial["metrics"]["val/acc_best"] for trial in results["trials"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert len({json.dumps(trial["params"], sort_keys=True) for trial in results["trials"]}) == 3
    assert "rank  trial" in output


BAD_SWEEP_FILES = {
    "missing": (None, "cannot read"),
    "not-yaml": ("method: [grid", "is not valid YAML"),
    "not-a-mapping": ("- grid", "is not a W&B sweep"),
    "unknown-method": ("method: best\nparameters: {seed: {values: [1]}}\n", "is not a valid W&B sweep"),
}


@pytest.mark.parametrize(("text", "reason"), BAD_SWEEP_FILES.values(), ids=BAD_SWEEP_FILES)
def test_bad_sweep_file_is_one_clear_error(tmp_path, text, reason):
    sweep_file = tmp_path / "sweep.yaml"
    if text is not None:
        sweep_file.write_text(text)
    result = run_script("-m", RUNNER, str(sweep_file), "--dir", str(tmp_path / "out"), cwd=PROJECT_DIR)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {sweep_file}") or line.startswith("error: cannot read")
    assert reason in line


def test_grid_sweep_records_a_crashed_trial_and_runs_the_rest(tmp_path):
    grid = {
        **load("sweep.yaml"),
        "method": "grid",
        "parameters": {"optimizer.lr": {"values": [0.003, -1.0, 0.01]}},
    }
    sweep_file = tmp_path / "grid.yaml"
    sweep_file.write_text(yaml.safe_dump(grid))
    output, results = run_sweep(tmp_path / "out", sweep_file, *BUDGET)
    states = {trial["params"]["optimizer.lr"]: trial["state"] for trial in results["trials"]}
    assert states == {0.003: "finished", 0.01: "finished", -1.0: "failed (exit 2)"}
    assert results["trials"][-1]["params"]["optimizer.lr"] == -1.0
    assert "optimizer.lr=-1.0: must be a number > 0" in (tmp_path / "out" / "trial-001.log").read_text()
    assert "[trial-001] failed (exit 2)" in output
