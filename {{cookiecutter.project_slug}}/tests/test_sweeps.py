"""Sweep files drive train.py as `wandb agent` would, online or through the offline runner."""

from __future__ import annotations

import json
import re
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import (
    DEFAULT_LOGGER,
    PROJECT_DIR,
    imported_by,
    run_script,
    script_env,
    start_runner,
    with_tests_on_path,
)
from hydra.core.hydra_config import HydraConfig
from kill_switch import SignalRunner
from omegaconf import OmegaConf
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from {{ cookiecutter.package_name }}.agent_args import hydra_overrides
from {{ cookiecutter.package_name }}.errors import UsageError
from {{ cookiecutter.package_name }}.sweep import SignalForwarder, agent_command, check_parameters, lock

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import sweeps

# Several processes or a cluster per test: `pytest -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow

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
    # Trials log to W&B, which reads their metrics, whatever the project's default logger.
    assert sweep["command"] == [
        "${env}",
        "${interpreter}",
        "${program}",
        *([] if DEFAULT_LOGGER == "wandb" else ["logger=wandb"]),
        "${args_no_hyphens}",
    ]
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
    cfg = compose_config("logger=wandb", *hydra_overrides(args))
    assert OmegaConf.select(cfg, key) == value


@pytest.mark.parametrize(("experiment", "expected_model"), [("aplite", "alexnet"), (None, "mlp")], ids=str)
def test_sweeping_over_experiment_works_without_a_plus(compose_config, experiment, expected_model):
    args = create_sweep_command_args({"args": {"experiment": {"value": experiment}}})["args_no_hyphens"]
    assert args == [f"experiment={experiment}"]
    compose_config(*hydra_overrides(args))
    assert HydraConfig.get().runtime.choices.get("experiment") == experiment
    assert HydraConfig.get().runtime.choices["model"] == expected_model


def run_sweep(tmp_path: Path, sweep_file: Path, *args: str) -> tuple[str, dict]:
    command = ["-X", "importtime", "-m", RUNNER, str(sweep_file), "--dir", str(tmp_path), *args]
    result = run_script(*command, cwd=PROJECT_DIR)
    errors, modules = imported_by(result)
    assert result.returncode == 0, result.stdout[-3000:] + errors[-3000:]
    # The runner starts trials and reads their metrics.json; torch loads in the trials only.
    assert not {"torch", "pytorch_lightning"} & modules
    return result.stdout, json.loads((tmp_path / "results.json").read_text())


# Trials each sweep file runs below: sweep.yaml's three are also ranked.
COUNTS = {name: 3 if name == "sweep.yaml" else 1 for name in SWEEP_FILES}


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory) -> Callable[[str], tuple[str, dict]]:
    """Return `sweep_run(name)`: the output and results.json of COUNTS[name] trials of that
    sweep file, run on first use."""
    runs: dict[str, tuple[str, dict]] = {}

    def _run(name: str) -> tuple[str, dict]:
        if name not in runs:
            sweep_dir = tmp_path_factory.mktemp("sweep")
            runs[name] = run_sweep(sweep_dir, SWEEP_FILES[name], "--count", str(COUNTS[name]), *BUDGET)
        return runs[name]

    return _run


@pytest.mark.parametrize("name", SWEEP_FILES)
def test_the_trials_of_each_sweep_file_train(sweep_run, name):
    _, results = sweep_run(name)
    assert len(results["trials"]) == COUNTS[name]
    for trial in results["trials"]:
        # One epoch proves the trial trains and tests; it need not beat chance yet.
        assert trial["state"] == "finished" and trial["metrics"]["global_step"] > 0
        assert 0 <= trial["metrics"]["test/acc"] <= 1


def test_random_sweep_runs_three_trials_and_ranks_them(sweep_run):
    output, results = sweep_run("sweep.yaml")
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


def grid_file(tmp_path: Path, parameters: dict) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({**load("sweep.yaml"), "method": "grid", "parameters": parameters}))
    return path


def read_results(sweep_dir: Path) -> dict:
    """results.json, which must parse whenever it exists: it is only ever replaced whole."""
    return json.loads((sweep_dir / "results.json").read_text())


# A count above the grid's 3 points: the grid must end when every point has run once.
INTERRUPTIONS = {
    "sigint-grid": (signal.SIGINT, "grid", ["--count", "4"]),
    "sigterm-random": (signal.SIGTERM, "sweep.yaml", ["--count", "3"]),
}


@pytest.mark.parametrize(("signum", "sweep_name", "count"), INTERRUPTIONS.values(), ids=INTERRUPTIONS)
def test_interrupted_sweep_keeps_finished_trials_and_the_same_command_continues(
    tmp_path, signum, sweep_name, count
):
    grid_points = [0.001, 0.003, 0.01]
    if sweep_name == "grid":
        sweep_file = grid_file(tmp_path, {"optimizer.lr": {"values": grid_points}})
    else:
        sweep_file = SWEEP_FILES[sweep_name]
    # The second trial signals the runner in its second epoch, after a checkpoint.
    epochs, interrupted = 3, "trial-001"
    command = [
        sys.executable,
        "-m",
        RUNNER,
        str(sweep_file),
        *count,
        f"trainer.max_epochs={epochs}",
        f"callbacks.early_stopping.patience={epochs}",  # every trial trains all its epochs
        "logger=csv",
        *SignalRunner.overrides(signum.name, [interrupted], tmp_path / "meeting"),
    ]
    env = with_tests_on_path(script_env({"PROJECT_ROOT": str(tmp_path / "root")}))
    runner = start_runner(*command[1:], env=env)
    try:
        output, errors = runner.communicate(timeout=600)
    finally:
        runner.kill()
    (sweep_dir,) = (tmp_path / "root" / "logs" / "sweeps").iterdir()

    assert runner.returncode == 128 + signum
    (line,) = errors.strip().splitlines()
    assert line.startswith(f"error: sweep stopped by {signum.name}") and "run the same command" in line
    assert "rank  trial" in output
    stopped = {trial["name"]: trial for trial in read_results(sweep_dir)["trials"]}
    # The runner passed the signal on: the running trial stopped instead of training to its end.
    assert max(stopped) == interrupted and stopped[interrupted]["state"] == f"interrupted ({signum.name})"
    finished = {name: trial for name, trial in stopped.items() if trial["state"] == "finished"}
    assert finished and all(trial["metrics"]["test/acc"] > 0 for trial in finished.values())
    written = {name: (sweep_dir / name / "metrics.json").stat().st_mtime_ns for name in finished}

    again = run_script(*command[1:], cwd=PROJECT_DIR, env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert list(sweep_dir.parent.iterdir()) == [sweep_dir]  # the same command found the same dir
    trials = {trial["name"]: trial for trial in read_results(sweep_dir)["trials"]}
    assert sorted(trials) == ["trial-000", "trial-001", "trial-002"]
    assert all(trial["state"] == "finished" for trial in trials.values())
    for name, trial in finished.items():  # not run again
        assert trials[name]["params"] == trial["params"] and f"[{name}] " not in again.stdout
        assert (sweep_dir / name / "metrics.json").stat().st_mtime_ns == written[name]
    # The interrupted trial went on from its last.ckpt, to the end of its training.
    assert f"resume={sweep_dir / interrupted}" in (sweep_dir / f"{interrupted}.log").read_text()
    assert trials[interrupted]["metrics"]["epoch"] == epochs
    values = [trial["params"]["optimizer.lr"] for trial in trials.values()]
    assert len(set(values)) == 3 and (sweep_name != "grid" or sorted(values) == grid_points)


def test_unknown_parameter_is_one_line_before_any_trial(tmp_path):
    sweep_file = grid_file(tmp_path, {"optimizer.lrr": {"values": [0.01]}})
    result = run_script(
        "-m", RUNNER, str(sweep_file), cwd=PROJECT_DIR, env={"PROJECT_ROOT": str(tmp_path / "root")}
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"error: {sweep_file}: parameter optimizer.lrr: no key optimizer.lrr in the config, nor a group; "
        "did you mean optimizer.lr?"
    )
    assert not (tmp_path / "root").exists() and result.stdout == ""


PARAMETER_CHECKS = {
    "misspelled-key": ({"optimizer.lrr": {"min": 0.001, "max": 0.01}}, [], "did you mean optimizer.lr?"),
    "unknown-model": ({"model": {"values": ["mlp", "alexnett"]}}, [], "model=alexnett: no such option;"),
    "unknown-experiment": ({"experiment": {"values": ["aplite", "nglit", None]}}, [], "did you mean nglite?"),
    "key-of-no-swept-option": (
        {"model": {"values": ["mlp", "resnet"]}, "model.num_layers": {"values": [3]}},
        [],
        "parameter model.num_layers: no key model.num_layers",
    ),
    "misspelled-override": (
        {"seed": {"values": [1]}},
        ["trainer.max_epoch=1"],
        "trainer.max_epoch=1: no key",
    ),
    "key-of-a-swept-option": (
        {"model": {"values": ["mlp", "alexnet"]}, "model.num_layers": {"values": [3]}},
        [],
        None,
    ),
    "experiment-and-its-keys": (
        {"experiment": {"values": ["aplite", None]}, "model.width": {"values": [16]}, "seed": {"value": 1}},
        ["logger=csv"],
        None,
    ),
}


@pytest.mark.parametrize(
    ("parameters", "overrides", "message"), PARAMETER_CHECKS.values(), ids=PARAMETER_CHECKS
)
def test_parameter_names_and_group_options_are_checked_against_the_config(
    tmp_path, parameters, overrides, message
):
    sweep = {**load("sweep.yaml"), "method": "grid", "parameters": parameters}
    if message is None:
        check_parameters(tmp_path / "grid.yaml", sweep, overrides)
    else:
        with pytest.raises(UsageError, match=re.escape(message)):
            check_parameters(tmp_path / "grid.yaml", sweep, overrides)


def hold_sweep_dir(sweep_dir: Path) -> object:
    return lock(sweep_dir)  # held by this test process while the returned file is open


def other_sweep_in_dir(sweep_dir: Path) -> None:
    sweep_dir.mkdir()
    (sweep_dir / "results.json").write_text(json.dumps({"sweep": {"method": "grid"}, "trials": []}))


SWEEP_DIR_CONFLICTS = {
    "another-runner-holds-it": (hold_sweep_dir, "another runner (pid"),
    "it-holds-another-sweep": (other_sweep_in_dir, "holds a different sweep"),
}


@pytest.mark.parametrize(("setup", "message"), SWEEP_DIR_CONFLICTS.values(), ids=SWEEP_DIR_CONFLICTS)
def test_sweep_dir_in_use_or_of_another_sweep_is_refused(tmp_path, setup, message):
    held = setup(tmp_path / "sweep")
    result = run_script(
        "-m", RUNNER, str(SWEEP_FILES["sweep.yaml"]), "--dir", str(tmp_path / "sweep"), cwd=PROJECT_DIR
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert not list((tmp_path / "sweep").glob("trial-*"))
    del held


def test_fresh_moves_earlier_trials_aside_and_starts_over(tmp_path):
    other_sweep_in_dir(tmp_path / "sweep")
    stdout, results = run_sweep(
        tmp_path / "sweep", SWEEP_FILES["sweep.yaml"], "--fresh", "--count", "1", *BUDGET
    )
    (aside,) = tmp_path.glob("sweep-until-*")
    assert read_results(aside)["sweep"] == {"method": "grid"} and f"moved to {aside}" in stdout
    assert [trial["state"] for trial in results["trials"]] == ["finished"]


def test_a_signal_ignored_on_purpose_stays_ignored():
    """Under `nohup` (SIGHUP ignored) a closed terminal must not stop the sweep."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with SignalForwarder().active():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, previous)
