"""Every logger gets the same resolved config, the metrics and the figures, each its own way:
read back offline from what each wrote. One training logs to all four at once. The run's
top-level tags and notes reach each logger in its own form."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECT_DIR, run_script, train_cli
from wandb_records import read_runs, write_out_runs_of_this_process

from {{ cookiecutter.package_name }}.utils.loggers import build_loggers, finish_wandb

LOGGERS = ("wandb", "tensorboard", "mlflow", "csv")
FIGURES = {"learning_curves", "confusion_matrix"}
EPOCHS = 2


@dataclass
class Logged:
    """What one logger holds about the run."""

    config: dict[str, Any]
    val_acc: list[float]  # per epoch
    figures: set[str]


@dataclass
class Run:
    root: Path  # paths.root_dir: where logs/mlflow/ goes
    dir: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("loggers")
    run_dir = train_cli(
        root / "run",
        f"trainer.max_epochs={EPOCHS}",
        "optimizer.lr=0.002",
        f"logger=[{','.join(LOGGERS)}]",
        f"paths.root_dir={root}",
    )
    return Run(root, run_dir)


def read_wandb(run: Run) -> Logged:
    (wandb_run,) = read_runs(run.dir)
    config = {key: value for key, value in wandb_run.config.items() if not key.startswith("_")}
    return Logged(
        config,
        [row["val/acc"] for row in wandb_run.history if "val/acc" in row],
        {key.split("/")[1] for row in wandb_run.history for key in row if key.startswith("figures/")},
    )


def read_tensorboard(run: Run) -> Logged:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.dir / "tensorboard"))
    events.Reload()
    (text,) = events.Tensors("config/text_summary")
    config = yaml.safe_load(text.tensor_proto.string_val[0].decode().removeprefix("```yaml\n").rstrip("`"))
    return Logged(
        config,
        [event.value for event in events.Scalars("val/acc")],
        {tag.removeprefix("figures/") for tag in events.Tags()["images"]},
    )


def read_mlflow(run: Run) -> Logged:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run.root}/logs/mlflow/mlflow.db")
    (mlflow_run,) = client.search_runs(
        [experiment.experiment_id for experiment in client.search_experiments()]
    )
    run_id = mlflow_run.info.run_id
    assert mlflow_run.info.status == "FINISHED"
    # The params, flattened as text, are what the UI compares runs on.
    params = mlflow_run.data.params
    assert (params["optimizer/lr"], params["model/input_shape"]) == ("0.002", "[1, 8, 8]")
    config_file = client.download_artifacts(run_id, "config.yaml", str(run.root))
    return Logged(
        yaml.safe_load(Path(config_file).read_text()),
        [
            metric.value
            for metric in sorted(client.get_metric_history(run_id, "val/acc"), key=lambda m: m.step)
        ],
        {Path(artifact.path).stem for artifact in client.list_artifacts(run_id, "figures")},
    )


def read_csv(run: Run) -> Logged:
    config = yaml.safe_load((run.dir / "csv" / "hparams.yaml").read_text())
    with open(run.dir / "csv" / "metrics.csv") as rows:
        val_acc = [float(row["val/acc"]) for row in csv.DictReader(rows) if row["val/acc"]]
    # CSV has no place for images: its figures are the PNGs in the run dir.
    return Logged(config, val_acc, {path.stem for path in run.dir.glob("*.png")})


READERS: dict[str, Callable[[Run], Logged]] = {
    "wandb": read_wandb,
    "tensorboard": read_tensorboard,
    "mlflow": read_mlflow,
    "csv": read_csv,
}


@pytest.mark.parametrize("logger", LOGGERS)
def test_each_logger_holds_the_resolved_config_the_metrics_and_the_figures(run, logger):
    logged = READERS[logger](run)
    resolved = yaml.safe_load((run.dir / "record" / "config.yaml").read_text())
    # The run's resolved config (plain values, no DictConfig), plus what train.py adds to it.
    assert set(logged.config) == {*resolved, "hydra", "num_params"}
    assert {key: logged.config[key] for key in resolved} == resolved
    assert logged.config["optimizer"]["lr"] == 0.002
    assert logged.config["model"]["input_shape"] == [1, 8, 8]  # interpolation resolved
    assert logged.config["hydra"]["choices"]["model"] == "mlp"
    assert logged.config["num_params"]["total"] > 10_000

    metrics = json.loads((run.dir / "metrics.json").read_text())
    assert len(logged.val_acc) == EPOCHS
    assert logged.val_acc[-1] == pytest.approx(metrics["val/acc"], abs=1e-6)
    assert logged.figures == FIGURES


def test_every_logger_holds_the_same_config(run):
    configs = {logger: READERS[logger](run).config for logger in LOGGERS}
    assert all(config == configs["csv"] for config in configs.values())


# logger: a module its package provides
PACKAGES = {"wandb": "wandb", "tensorboard": "tensorboard", "mlflow": "mlflow"}


@pytest.mark.parametrize("logger", PACKAGES)
def test_a_logger_whose_package_is_missing_is_one_error_line(tmp_path, logger):
    # train.py in a Python where `find_spec` cannot find that package (as if not installed).
    script = (
        "import importlib.util, runpy, sys\n"
        "find_spec = importlib.util.find_spec\n"
        f"importlib.util.find_spec = lambda name, *args: None if name == {PACKAGES[logger]!r} "
        "else find_spec(name, *args)\n"
        f"sys.argv = ['train.py', 'logger={logger}', 'hydra.run.dir={tmp_path}/run']\n"
        "runpy.run_path('train.py', run_name='__main__')\n"
    )
    result = run_script("-c", script, cwd=PROJECT_DIR)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: logger={logger} needs the {logger} package: pip install '.[{logger}]'"
    ]
    assert not (tmp_path / "run").exists()


def read_labels(logger: str, run_dir: Path, root: Path) -> tuple[list[str], str | None]:
    """The tags and notes one logger holds about a run, read back from what it wrote."""
    if logger == "wandb":
        (wandb_run,) = read_runs(run_dir)
        return wandb_run.tags, wandb_run.notes
    if logger == "mlflow":
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{root}/logs/mlflow/mlflow.db")
        (mlflow_run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
        tags = mlflow_run.data.tags
        return [key for key, value in tags.items() if value == ""], tags.get("mlflow.note.content")
    config = yaml.safe_load((run_dir / logger / "hparams.yaml").read_text())
    return config["tags"], config["notes"]


@pytest.mark.parametrize("logger", LOGGERS)
def test_experiment_tags_and_notes_reach_every_logger(compose_config, tmp_path, logger):
    # resnet_digits sets the top-level tags and notes; loggers are built as a run builds them.
    run_dir = tmp_path / "run"
    cfg = compose_config("+experiment=resnet_digits", f"logger={logger}", "notes=a b", run_dir=str(run_dir))
    for built in build_loggers(cfg):
        built.save()
        built.finalize("success")
    finish_wandb(exit_code=0)
    write_out_runs_of_this_process()
    tags, notes = read_labels(logger, run_dir, tmp_path)
    assert (sorted(tags), notes) == (["digits", "resnet"], "a b")
