"""A bad config value or override ends as one `error:` line, exit status 2, before torch is
imported and with nothing left behind; in a multirun it fails only its own job; callbacks and
loggers can be switched off the ways people write it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import DATASETS, DEFAULT_LOGGER, EXPERIMENTS, MODELS, PROJECT_DIR, options, run_script

from {{ cookiecutter.package_name }}.agent_args import hydra_overrides
from {{ cookiecutter.package_name }}.config_checks import check_config
from {{ cookiecutter.package_name }}.training import run_training

HEAVY_MODULES = (
    "torch", "pytorch_lightning", "lightning_fabric", "torchmetrics", "wandb", "tensorboard", "mlflow",
)  # fmt: skip

# name: (script and overrides, the one line expected on stderr). {tmp} is the test's own dir.
BAD_CONFIGS = {
    "non-numeric-lr": (["train.py", "optimizer.lr=abc"], "optimizer.lr='abc': must be a number > 0"),
    "zero-batch-size": (
        ["train.py", "dataset.batch_size=0"],
        "dataset.batch_size=0: must be an integer >= 1",
    ),
    "boolean-batch-size": (
        ["train.py", "dataset.batch_size=true"],
        "dataset.batch_size=true: must be an integer >= 1",
    ),
    "negative-epochs": (
        ["train.py", "trainer.max_epochs=-3"],
        "trainer.max_epochs=-3: must be an integer >= 1, or -1 (no limit)",
    ),
    "interpolated-value": (
        ["train.py", "trainer.max_epochs=-1"],
        "scheduler.T_max=-1 (from ${trainer.max_epochs}): must be an integer >= 1",
    ),
    "unresolvable-interpolation": (
        ["train.py", "optimizer.lr=${oops}"],
        "optimizer.lr=${oops}: cannot be resolved: Interpolation key 'oops' not found",
    ),
    "dropout-above-one": (
        ["train.py", "model.dropout=1.5"],
        "model.dropout=1.5: must be a number >= 0 and < 1",
    ),
    "resnet-depth": (
        ["train.py", "model=resnet", "model.depth=10"],
        "model.depth=10: must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...)",
    ),
    "nonfinite-policy": (
        ["train.py", "++nonfinite_loss=maybe"],
        "nonfinite_loss='maybe': must be one of stop, skip",
    ),
    "callback-not-a-config": (
        ["train.py", "callbacks.early_stopping=5"],
        "callbacks.early_stopping=5: must be a config with _target_, or null to leave it out",
    ),
    "option-of-a-logger-not-chosen": (
        ["train.py", "logger=csv", "+logger.wandb.tags=[a]"],
        "logger.wandb sets tags but logger=wandb is not chosen: put run tags and notes in the "
        "top-level `tags:` and `notes:`, which every logger gets, or choose it too: 'logger=[csv,wandb]'",
    ),
    "stats-misspelled-dataset": (
        ["-m", "{{ cookiecutter.package_name }}.data.stats", "dataset=digitz"],
        f"dataset=digitz: no such option; did you mean digits? choices: {', '.join(DATASETS)}",
    ),
    "nesterov-without-momentum": (
        ["train.py", "optimizer=sgd", "optimizer.momentum=0"],
        "optimizer.nesterov=true: needs optimizer.momentum > 0 (it is 0)",
    ),
    "mean-per-channel": (
        ["train.py", "dataset=image_folder", "dataset.input_shape=[1,32,32]"],
        "dataset.mean=[0.485, 0.456, 0.406]: must have 1 value "
        "(one per channel of dataset.input_shape=[1, 32, 32])",
    ),
    "no-validation-split": (
        ["train.py", "dataset.val_fraction=0"],
        "dataset.val_fraction=0: must be a number > 0 and < 1",
    ),
    "splits-sum-to-one": (
        ["train.py", "dataset.val_fraction=0.5", "dataset.test_fraction=0.5"],
        "dataset.val_fraction=0.5 and dataset.test_fraction=0.5: their sum must be below 1",
    ),
    "unknown-monitor-mode": (["train.py", "monitor.mode=up"], "monitor.mode='up': must be one of min, max"),
    "test-metric-monitored": (
        ["train.py", "monitor.metric=test/acc"],
        "monitor.metric='test/acc': must be a metric logged during fit, e.g. 'val/acc' or 'val/loss'",
    ),
    "missing-checkpoint": (
        ["train.py", "ckpt_path={tmp}/missing.ckpt"],
        "ckpt_path='{tmp}/missing.ckpt' is not a file: pass the path of a .ckpt file",
    ),
    "checkpoint-in-the-run-dir": (
        ["train.py", "ckpt_path=${paths.output_dir}/last.ckpt", "hydra.run.dir={tmp}/run"],
        "ckpt_path='{tmp}/run/last.ckpt' is not a file: pass the path of a .ckpt file",
    ),
    "misspelled-option": (
        ["train.py", "model=alexnett"],
        f"model=alexnett: no such option; did you mean alexnet? choices: {', '.join(MODELS)}",
    ),
    "misspelled-experiment": (
        ["train.py", "+experiment=aplitee"],
        "experiment=aplitee: no such option; did you mean aplite or nglite? "
        f"choices: {', '.join(EXPERIMENTS)}",
    ),
    "misspelled-option-in-a-sweep": (
        ["train.py", "-m", "model=mlp,alexnett"],
        f"model=alexnett: no such option; did you mean alexnet? choices: {', '.join(MODELS)}",
    ),
    "misspelled-key": (
        ["train.py", "optimizer.lrr=0.1"],
        "optimizer.lrr=0.1: no key optimizer.lrr; did you mean optimizer.lr? "
        "(+optimizer.lrr=0.1 adds a new key)",
    ),
    "misspelled-group": (
        ["train.py", "modle=mlp"],
        "modle=mlp: no key modle; did you mean model? (+modle=mlp adds a new key)",
    ),
    "misspelled-callback": (
        ["train.py", "callbacks.early_stoping.patience=3"],
        "callbacks.early_stoping.patience=3: no key callbacks.early_stoping; "
        "did you mean callbacks.early_stopping? (+callbacks.early_stoping.patience=3 adds a new key)",
    ),
    "unknown-key-no-near-one": (
        ["train.py", "optimizer.xyz=1"],
        "optimizer.xyz=1: no key optimizer.xyz; keys of optimizer: _partial_, _target_, lr, weight_decay "
        "(+optimizer.xyz=1 adds a new key)",
    ),
    "deleting-a-missing-callback": (
        ["train.py", "~callbacks.early_stoping"],
        "Could not delete from config. 'callbacks.early_stoping' does not exist.",
    ),
    "unparsable-override": (
        ["train.py", "optimizer.lr=["],
        "optimizer.lr=[: cannot be parsed: no viable alternative at input '[' "
        "See https://hydra.cc/docs/1.2/advanced/override_grammar/basic for details",
    ),
    "eval-without-checkpoint": (
        ["eval.py"],
        "ckpt_path is required: pass ckpt_path=<run dir>/checkpoints/best.ckpt",
    ),
    "eval-zero-batch-size": (
        ["eval.py", "ckpt_path={tmp}/missing.ckpt", "dataset.batch_size=0"],
        "dataset.batch_size=0: must be an integer >= 1",
    ),
    "eval-misspelled-dataset": (
        ["eval.py", "ckpt_path={tmp}/missing.ckpt", "dataset=mnistt"],
        f"dataset=mnistt: no such option; did you mean mnist? choices: {', '.join(DATASETS)}",
    ),
}


@pytest.fixture(scope="module")
def without_heavy_modules(tmp_path_factory) -> dict[str, str]:
    """An environment in which importing torch, Lightning or W&B fails."""
    shim = tmp_path_factory.mktemp("shim")
    for name in HEAVY_MODULES:
        (shim / name).mkdir()
        (shim / name / "__init__.py").write_text(
            f"raise ImportError('{name} imported before the config check')\n"
        )
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize(("command", "message"), BAD_CONFIGS.values(), ids=BAD_CONFIGS)
def test_bad_config_is_one_line_before_torch_and_leaves_nothing_behind(
    tmp_path, without_heavy_modules, command, message
):
    # All outputs (run dirs, sweep dirs, W&B files, data) would go under tmp_path.
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in command]
    result = run_script(*args, f"paths.root_dir={tmp_path}", cwd=PROJECT_DIR, env=without_heavy_modules)
    assert result.stderr.strip().splitlines() == [f"error: {message.replace('{tmp}', str(tmp_path))}"]
    assert result.returncode == 2
    assert list(tmp_path.iterdir()) == []


def test_hydra_full_error_shows_hydras_own_report(tmp_path):
    result = run_script("train.py", "model=alexnett", cwd=PROJECT_DIR, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "Could not find 'model/alexnett'" in result.stderr


@pytest.mark.parametrize(
    ("group", "option"),
    [
        (group, option)
        for group in ("optimizer", "scheduler", "trainer", "callbacks", "logger")
        for option in options(group)
    ]
    + [("+experiment", option) for option in EXPERIMENTS],
    ids=str,
)
def test_every_shipped_option_passes_the_checks(compose_config, machine_gpus, group, option):
    machine_gpus(cuda=1, mps=True)  # trainer=gpu and mps are checked against the hardware
    check_config(compose_config(f"{group}={option}"))


# name: (swept overrides, number of jobs, the failing job, its line at the end, whether its dir stays)
FAILING_JOBS = {
    "bad-value": (
        ["optimizer.lr=0.003,abc,0.01"],
        3,
        1,
        "job 1 (optimizer.lr=abc): optimizer.lr='abc': must be a number > 0",
        False,  # it stopped at the config check, before doing anything
    ),
    "data-error": (
        ["dataset=digits,image_folder", "paths.data_dir={tmp}/no-data"],
        2,
        1,
        "job 1 (dataset=image_folder): image folder {tmp}/no-data/images does not exist: "
        "put your images in {tmp}/no-data/images/<class name>/<image>",
        True,  # its log shows what it did before failing
    ),
}


@pytest.mark.parametrize(("swept", "jobs", "failed", "line", "kept"), FAILING_JOBS.values(), ids=FAILING_JOBS)
def test_failed_multirun_job_does_not_stop_the_others_and_is_listed_last(
    tmp_path, swept, jobs, failed, line, kept
):
    sweep_dir = tmp_path / "sweep"
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in swept]
    result = run_script(
        "train.py",
        "-m",
        *args,
        "trainer.max_epochs=1",
        "logger=csv",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=PROJECT_DIR,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-2:] == [
        f"error: 1 of {jobs} jobs failed; the others are in {sweep_dir}",
        f"error: {line.replace('{tmp}', str(tmp_path))}",
    ]
    finished = [sweep_dir / str(job) for job in range(jobs) if job != failed]
    assert all(json.loads((job / "metrics.json").read_text())["test/acc"] > 0.5 for job in finished)
    assert (sweep_dir / str(failed)).exists() == kept


def test_interrupted_job_stops_the_whole_multirun_with_its_status(tmp_path):
    # A training module whose training is stopped by SIGTERM (and that imports no torch).
    script = (
        "import signal, sys, types\n"
        "from {{ cookiecutter.package_name }} import cli\n"
        "from {{ cookiecutter.package_name }}.errors import Interrupted\n"
        "def interrupted(cfg):\n"
        "    raise Interrupted(signal.SIGTERM, 'stopped by SIGTERM; last.ckpt saved')\n"
        "training = sys.modules['{{ cookiecutter.package_name }}.training'] = types.ModuleType('training')\n"
        "training.run_training = interrupted\n"
        f"sys.argv = ['train.py', '-m', 'seed=1,2', 'logger=csv', 'hydra.sweep.dir={tmp_path}/sweep']\n"
        "cli.train()\n"
    )
    result = run_script("-c", script, cwd=PROJECT_DIR)
    assert result.returncode == 128 + 15
    assert result.stderr.strip().splitlines()[-1] == "error: stopped by SIGTERM; last.ckpt saved"
    assert sorted(path.name for path in (tmp_path / "sweep").iterdir()) == [
        "0",
        "multirun.yaml",
        "summary.csv",
        "summary.json",
    ]
    (job,) = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert (job["seed"], job["status"], job["reason"]) == (
        "1",
        "interrupted",
        "stopped by SIGTERM; last.ckpt saved",
    )


# What each logger writes, from the run dir (MLflow: its store under paths.root_dir, the run dir's parent).
LOGGER_FILES = ["wandb", "tensorboard", "csv", "../logs/mlflow"]
# name: (overrides, files the run must not have, files it must have)
SWITCHED_OFF = {
    "callbacks.best_checkpoint=null": (
        ["callbacks.best_checkpoint=null", "~logger"],
        ["checkpoints/best.ckpt"],
        ["checkpoints/last.ckpt"],
    ),
    "~callbacks.last_checkpoint": (
        ["~callbacks.last_checkpoint", "~logger"],
        ["checkpoints/last.ckpt"],
        ["checkpoints/best.ckpt"],
    ),
    "callbacks.report=null": (
        ["callbacks.report=null", "~logger"],
        ["learning_curves.png", "confusion_matrix.png"],
        ["checkpoints/best.ckpt"],
    ),
    "logger=null": (["logger=null"], LOGGER_FILES, ["learning_curves.png"]),
    "logger.<default>=null": ([f"logger.{DEFAULT_LOGGER}=null"], LOGGER_FILES, ["learning_curves.png"]),
    "~logger": (["~logger"], LOGGER_FILES, ["learning_curves.png"]),
}


@pytest.mark.parametrize(("overrides", "absent", "present"), SWITCHED_OFF.values(), ids=SWITCHED_OFF)
def test_switched_off_callback_or_logger_trains_without_it(compose_config, overrides, absent, present):
    # hydra_overrides is what train.py does to its arguments (it turns `logger=null` into `~logger`).
    cfg = compose_config(*hydra_overrides(overrides), "trainer.max_epochs=1")
    assert run_training(cfg)["test/acc"] > 0.5
    out = Path(cfg.paths.output_dir)
    assert [name for name in absent if (out / name).exists()] == []
    assert [name for name in present if not (out / name).exists()] == []


def test_config_errors_benchmark_prints_a_table_with_ratios_to_cfg_job():
    result = run_script("benchmarks/config_errors.py", "--repeats", "1", cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| `python train.py")]
    assert len(rows) == 4 and "--cfg job" in rows[0] and " 1.00x " in rows[0]
