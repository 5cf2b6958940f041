"""Optuna searches: trials of train.py sharing one storage, pruned, failed, interrupted, resumed."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from conftest import (
    CONFIG_DIR,
    MODELS,
    PROJECT_DIR,
    imported_by,
    options,
    run_script,
    script_env,
    start_runner,
    with_tests_on_path,
)
from kill_switch import SignalRunner

from {{ cookiecutter.package_name }}.errors import RunError
from {{ cookiecutter.package_name }}.search import (
    PRUNED_AT,
    RUN_DIR,
    SURPLUS,
    Search,
    check_parameters,
    counted,
    distributions,
    enqueued_trials,
    load_search,
    main,
    open_storage,
    open_study,
)
from {{ cookiecutter.package_name }}.trials import SignalForwarder, run_trial
from {{ cookiecutter.package_name }}.utils.pruning import ReportToTrial

# Several processes or a cluster per test: `pytest -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow

RUNNER = "{{ cookiecutter.package_name }}.search"
BUDGET = ["logger=csv"]
States = optuna.trial.TrialState


def search_file(tmp_path: Path, **settings: object) -> Path:
    """A search over the learning rate alone, with `settings` replacing the defaults."""
    search = {
        "study_name": "lr",
        "n_trials": 6,
        "sampler": {"type": "tpe", "seed": 0},
        "pruner": None,
        "params": {"optimizer.lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2}},
        **settings,
    }
    path = tmp_path / "lr.yaml"
    path.write_text(yaml.safe_dump(search))
    return path


def load_study(root: Path) -> optuna.Study:
    (study_dir,) = (root / "logs" / "searches").iterdir()
    return optuna.load_study(study_name=study_dir.name, storage=f"sqlite:///{study_dir / 'study.db'}")


def metrics_of(trial: optuna.trial.FrozenTrial) -> dict:
    return json.loads((Path(trial.user_attrs[RUN_DIR]) / "metrics.json").read_text())


def test_two_workers_share_the_study_prune_a_hopeless_trial_and_go_on_after_a_failed_one(tmp_path):
    path = search_file(
        tmp_path,
        # Below 0.3 after the first epoch is hopeless: chance is 0.1, any working rate is far above.
        pruner={"type": "threshold", "lower": 0.3, "n_warmup_steps": 0},
        enqueue_trials=[{"optimizer.lr": -1.0}, {"optimizer.lr": 1.0e-7}],  # fails; learns nothing
    )
    result = run_script(
        "-X", "importtime", "-m", RUNNER, f"hparams_search={path}", "trainer.max_epochs=2", *BUDGET,
        "--workers", "2", cwd=PROJECT_DIR, env={"PROJECT_ROOT": str(tmp_path)},
    )  # fmt: skip
    errors, modules = imported_by(result)
    assert result.returncode == 0, result.stdout[-3000:] + errors[-3000:]
    assert not {"torch", "pytorch_lightning"} & modules  # they load in the trials only
    trials = load_study(tmp_path).get_trials()
    assert [trial.number for trial in trials] == list(range(6))
    assert len({trial.params["optimizer.lr"] for trial in trials}) == 6
    assert len({trial.user_attrs[RUN_DIR] for trial in trials}) == 6
    failed, pruned = trials[0], trials[1]
    assert failed.state == States.FAIL
    assert failed.user_attrs["error"] == "optimizer.lr=-1.0: must be a number > 0"
    # Reported after its first epoch, pruned there, stopped cleanly with its metrics written.
    assert pruned.state == States.PRUNED and pruned.user_attrs[PRUNED_AT] == 0
    assert list(pruned.intermediate_values) == [0] and metrics_of(pruned)["epoch"] == 1
    for trial in trials[2:]:
        assert trial.state == States.COMPLETE and list(trial.intermediate_values) == [0, 1]
        assert trial.value == metrics_of(trial)["val/acc"] == trial.intermediate_values[1]
    # Two trials ran at the same time.
    spans = sorted((trial.datetime_start, trial.datetime_complete) for trial in trials)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    results = json.loads((Path(failed.user_attrs[RUN_DIR]).parent / "results.json").read_text())
    assert [row["state"] for row in results["trials"]][-2:] == ["failed (exit 2)", "pruned at epoch 0"]
    assert "rank  trial" in result.stdout


def checkpoint(trial: optuna.trial.FrozenTrial) -> Path:
    return Path(trial.user_attrs.get(RUN_DIR, "-")) / "checkpoints" / "last.ckpt"


def test_stopped_study_continues_with_two_runners_resuming_the_interrupted_trials(tmp_path):
    # Two short trials finish first; the two long ones signal the runner once both have trained an
    # epoch (kill_switch.SignalRunner), so the signal finds both training, however slow the machine.
    short, long = 2, 4
    lengths = [short, short, long, long]
    path = search_file(
        tmp_path,
        n_trials=4,
        params={
            "optimizer.lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2},
            "trainer.max_epochs": {"type": "categorical", "choices": [short, long]},
        },
        enqueue_trials=[
            {"optimizer.lr": lr, "trainer.max_epochs": epochs}
            for lr, epochs in zip([2.0e-3, 4.0e-3, 6.0e-3, 8.0e-3], lengths, strict=True)
        ],
    )
    signal_runner = SignalRunner.overrides("SIGTERM", ["trial-002", "trial-003"], tmp_path / "meeting")
    args = ["-m", RUNNER, f"hparams_search={path}", "~callbacks.early_stopping", *BUDGET, *signal_runner]
    env = with_tests_on_path(script_env({"PROJECT_ROOT": str(tmp_path)}))
    runner = start_runner(*args, "--workers", "2", env=env)
    try:
        _, errors = runner.communicate(timeout=600)
    finally:
        runner.kill()
    assert runner.returncode == 143
    (line,) = errors.strip().splitlines()
    assert line.startswith("error: search stopped by SIGTERM") and "run the same command" in line
    stopped = load_study(tmp_path).get_trials()
    finished = [trial for trial in stopped if trial.state == States.COMPLETE]
    interrupted = [trial for trial in stopped if trial.state == States.FAIL]
    assert [trial.number for trial in finished] == [0, 1]  # the short ones
    assert [trial.number for trial in interrupted] == [2, 3]  # the long ones
    assert all(trial.user_attrs["outcome"] == "interrupted (SIGTERM)" for trial in interrupted)
    assert len([trial for trial in stopped if trial.state == States.WAITING]) == len(interrupted)
    written = {trial.number: os.stat(Path(trial.user_attrs[RUN_DIR]) / "metrics.json") for trial in finished}
    assert all(checkpoint(trial).is_file() for trial in interrupted)  # kept what they had trained

    # Two runners, as on two machines, continue the same study together.
    command = [sys.executable, *args, "--workers", "1"]
    runners = [subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, text=True)]
    deadline = time.monotonic() + 600
    while not any(trial.state == States.RUNNING for trial in load_study(tmp_path).get_trials()):
        # The first one opens the storage and takes a trial first.
        assert runners[0].poll() is None and time.monotonic() < deadline, "the first runner took no trial"
        time.sleep(0.1)
    runners.append(subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=600)[0] for process in runners]
    assert [process.returncode for process in runners] == [0, 0], outputs
    assert all("[trial-" in output for output in outputs), outputs  # both ran trials

    trials = load_study(tmp_path).get_trials()
    done = [trial for trial in trials if trial.state == States.COMPLETE]
    assert counted(trials) == 4 and len(done) == 4
    assert len({trial.params["optimizer.lr"] for trial in done}) == 4
    for trial in finished:  # not run again
        metrics = Path(trial.user_attrs[RUN_DIR]) / "metrics.json"
        assert os.stat(metrics).st_mtime_ns == written[trial.number].st_mtime_ns
        assert f"[trial-{trial.number:03d}]" not in "".join(outputs)
    for trial in interrupted:  # resumed from its last.ckpt, in its own run dir, to the end
        (retry,) = [other for other in done if other.system_attrs.get("failed_trial") == trial.number]
        run_dir = Path(trial.user_attrs[RUN_DIR])
        assert retry.params == trial.params and retry.user_attrs[RUN_DIR] == str(run_dir)
        attempts = [line for line in Path(f"{run_dir}.log").read_text().splitlines() if line.startswith("$ ")]
        assert attempts[-1].endswith(f" resume={run_dir}")
        metrics = metrics_of(retry)
        assert metrics["epoch"] == trial.params["trainer.max_epochs"] and retry.value == metrics["val/acc"]


@pytest.fixture
def study_of(tmp_path):
    """A study of the search in `path`, on SQLite in tmp_path, and a Search on it."""

    def make(path: Path, heartbeat_seconds: int | None = None) -> Search:
        spec = load_search(path)
        url = f"sqlite:///{tmp_path / 'study.db'}"
        storage = open_storage(url, heartbeat_seconds)
        study = open_study(storage, "lr", spec, "maximize", "val/acc")
        return Search(study, storage, spec, [], tmp_path, url, "val/acc")

    return make


def test_a_new_trial_that_another_runner_overtook_is_given_up(tmp_path, study_of):
    search = study_of(search_file(tmp_path))
    ask = search.study.ask

    def ask_after_another_runner(*args, **kwargs):
        other = optuna.load_study(study_name="lr", storage=search.url)
        other.ask()  # between this runner's count and its ask
        return ask(*args, **kwargs)

    search.study.ask = ask_after_another_runner
    assert search.next_trial(n_trials=1, forwarder=SignalForwarder()) is None
    trials = search.study.get_trials()
    assert [trial.user_attrs.get(SURPLUS) for trial in trials] == [None, True]
    assert counted(trials) == 1


RUNNERS = {"runner-vanished": False, "runner-alive": True}


@pytest.mark.parametrize("alive", RUNNERS.values(), ids=RUNNERS)
def test_a_trial_is_retried_in_its_run_dir_only_once_its_heartbeat_stopped(tmp_path, study_of, alive):
    search = study_of(search_file(tmp_path), heartbeat_seconds=1)
    first = search.next_trial(n_trials=2, forwarder=SignalForwarder())
    first.set_user_attr(RUN_DIR, str(tmp_path / "trial-000"))
    with search.heartbeat(first):
        if alive:  # two heartbeat intervals pass while its runner waits for it
            time.sleep(3)
            second = search.next_trial(n_trials=2, forwarder=SignalForwarder())
    if not alive:  # the runner died: no more heartbeats, and nobody tells the trial's end
        time.sleep(3)
        second = search.next_trial(n_trials=2, forwarder=SignalForwarder())

    first_now = search.study.get_trials()[0]
    if alive:
        assert first_now.state == States.RUNNING and second.params != first.params
        assert counted(search.study.get_trials()) == 2
    else:
        assert first_now.state == States.FAIL and second.params == first.params
        assert second.user_attrs[RUN_DIR] == str(tmp_path / "trial-000")
        assert counted(search.study.get_trials()) == 1


BAD_SEARCHES = {
    "misspelled-key": (
        {"params": {"optimizer.lrr": {"type": "float", "low": 0.001, "high": 0.01}}},
        [],
        "{path}: parameter optimizer.lrr: no key optimizer.lrr in the config, nor a group; "
        "did you mean optimizer.lr?",
    ),
    "unknown-group-option": (
        {"params": {"model": {"type": "categorical", "choices": ["mlp", "alexnett"]}}},
        [],
        "{path}: parameter model: model=alexnett: no such option; did you mean alexnet? "
        f"choices: {', '.join(MODELS)}",
    ),
    "empty-range": (
        {"params": {"optimizer.lr": {"type": "float", "low": 0.1, "high": 0.01}}},
        [],
        "{path}: parameter optimizer.lr: `low <= high` must hold",  # Optuna's words
    ),
    "enqueued-value-off-a-log-scale": (
        {
            "params": {"optimizer.lr": {"type": "float", "low": 0.001, "high": 0.01, "log": True}},
            "enqueue_trials": [{"optimizer.lr": 0.0}],
        },
        [],
        "{path}: enqueue_trials: optimizer.lr=0.0: ",
    ),
    "unknown-pruner": ({"pruner": {"type": "medain"}}, [], "{path}: pruner type 'medain': must be one of"),
    "misspelled-override": (
        {},
        ["trainer.max_epoch=1"],
        "the overrides for every trial: trainer.max_epoch=1",
    ),
}


@pytest.mark.parametrize(("settings", "overrides", "message"), BAD_SEARCHES.values(), ids=BAD_SEARCHES)
def test_bad_search_is_one_line_before_any_trial(tmp_path, monkeypatch, capsys, settings, overrides, message):
    path = search_file(tmp_path, **settings)
    monkeypatch.chdir(PROJECT_DIR)
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert main([f"hparams_search={path}", *overrides]) == 2
    output = capsys.readouterr()
    (line,) = output.err.strip().splitlines()
    assert line.startswith(f"error: {message.format(path=path)}")
    assert not (tmp_path / "logs").exists() and output.out == ""


def test_search_names_are_checked_and_train_py_points_to_the_runner(tmp_path):
    misspelled = run_script("-m", RUNNER, "hparams_search=digits_mpl", cwd=PROJECT_DIR)
    assert misspelled.returncode == 2 and misspelled.stderr.strip().splitlines() == [
        "error: hparams_search=digits_mpl: no such option; did you mean digits_mlp? "
        f"choices: {', '.join(options('hparams_search'))} (or the path of a .yaml file)"
    ]
    direct = run_script("train.py", "hparams_search=digits_mlp", "trainer.max_epochs=3", cwd=PROJECT_DIR)
    assert direct.returncode == 2 and direct.stderr.strip().splitlines() == [
        "error: hparams_search=digits_mlp: a search runs train.py once per trial: "
        "python -m {{ cookiecutter.package_name }}.search hparams_search=digits_mlp trainer.max_epochs=3"
    ]


@pytest.mark.parametrize("name", options("hparams_search"))
def test_shipped_search_is_valid_and_its_first_trials_lie_in_its_space(name):
    spec = load_search(CONFIG_DIR / "hparams_search" / f"{name}.yaml")
    check_parameters(spec, [])
    space = distributions(spec)
    for values in enqueued_trials(spec):
        for key, value in values.items():
            assert space[key]._contains(space[key].to_internal_repr(value)), (key, value)


TRIAL_SCRIPT = (
    "import os, pathlib, sys, time\n"
    "run_dir = pathlib.Path(os.environ['TRAIN_RUN_DIR'])\n"
    "run_dir.mkdir()\n"
    "if sys.argv[1] == 'writes-metrics':\n"
    "    (run_dir / 'metrics.json').write_text('{\"val/acc\": 0.5}')\n"
    "(run_dir / 'ready').touch()\n"
    "time.sleep(600)\n"
)
SIGNAL_TIMES = {
    "after-metrics-json": ("writes-metrics", "finished"),
    "mid-training": ("-", "interrupted (SIGTERM)"),
}


@pytest.mark.parametrize(("mode", "state"), SIGNAL_TIMES.values(), ids=SIGNAL_TIMES)
def test_a_signal_marks_a_trial_interrupted_unless_it_had_written_its_metrics(tmp_path, mode, state):
    forwarder, trial_dir, outcome = SignalForwarder(), tmp_path / "trial-000", []
    command = [sys.executable, "-c", TRIAL_SCRIPT, mode]
    worker = threading.Thread(target=lambda: outcome.append(run_trial(command, trial_dir, forwarder)))
    worker.start()
    deadline = time.monotonic() + 600
    while not (trial_dir / "ready").is_file():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with forwarder.active():
        os.kill(os.getpid(), signal.SIGTERM)  # to the runner, which passes it on
        worker.join()
    assert outcome[0][0] == state


def test_a_training_whose_trial_was_ended_meanwhile_stops(tmp_path, study_of):
    """An orphan of a runner that died: its trial was failed and queued again elsewhere."""
    search = study_of(search_file(tmp_path))
    trial = search.next_trial(n_trials=1, forwarder=SignalForwarder())
    search.study.tell(trial, state=States.FAIL)
    trainer = SimpleNamespace(
        sanity_checking=False, callback_metrics={"val/acc": 0.5}, current_epoch=3, is_global_zero=True
    )
    with pytest.raises(RunError, match="trial 0 was ended by the search meanwhile"):
        ReportToTrial(trial, "val/acc", PRUNED_AT).on_validation_end(trainer, None)
