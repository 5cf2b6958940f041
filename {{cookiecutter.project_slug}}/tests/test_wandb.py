"""What reaches W&B, read back from the offline run files train.py writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PROJECT_DIR, run_script, train_cli
from wandb_records import read_runs

WANDB = "logger=wandb"  # whatever the project's default logger
SECRET = "local-0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory) -> Path:
    """One offline W&B training run (2 epochs), with an API key in the environment."""
    out = tmp_path_factory.mktemp("wandb") / "run"
    env = {"WANDB_MODE": "offline", "WANDB_API_KEY": SECRET}
    return train_cli(out, WANDB, "trainer.max_epochs=2", "optimizer.lr=0.002", env=env)


def test_config_arrives_as_plain_resolved_values_with_run_info(offline_run):
    (run,) = read_runs(offline_run)
    assert run.config["optimizer"]["lr"] == 0.002
    assert run.config["model"]["input_shape"] == [1, 8, 8]  # interpolation resolved
    assert run.config["callbacks"]["best_checkpoint"]["dirpath"] == f"{offline_run}/checkpoints"
    # Hydra keeps hydra.* overrides apart from the task overrides.
    assert run.config["hydra"]["overrides"] == [WANDB, "trainer.max_epochs=2", "optimizer.lr=0.002"]
    assert run.config["hydra"]["choices"]["model"] == "mlp"
    assert run.config["hydra"]["run_dir"] == str(offline_run)
    assert run.config["num_params"]["total"] == run.config["num_params"]["trainable"] > 10_000


def test_metrics_and_figures_reach_wandb_and_the_run_dir(offline_run):
    (run,) = read_runs(offline_run)
    val_acc = [row["val/acc"] for row in run.history if "val/acc" in row]
    assert len(val_acc) == 2 and run.summary["test/acc"] > 0.5
    logged_images = {key.split("/")[1] for row in run.history for key in row if key.startswith("figures/")}
    assert logged_images == {"learning_curves", "confusion_matrix"}
    for name in ("learning_curves", "confusion_matrix"):
        assert (offline_run / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run.exit_code == 0


def test_api_key_is_written_nowhere(offline_run):
    leaks = [
        path for path in offline_run.rglob("*") if path.is_file() and SECRET.encode() in path.read_bytes()
    ]
    assert leaks == []


def test_each_multirun_job_is_its_own_run_and_a_failed_job_says_so(tmp_path):
    # An optimizer class that does not exist fails the second job after its W&B run started
    # (a bad value such as lr=-1 would stop it at the config check, before any run).
    result = run_script(
        "train.py",
        "-m",
        WANDB,
        "optimizer._target_=torch.optim.AdamW,torch.optim.NoSuchOptimizer",
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={tmp_path}",
        cwd=PROJECT_DIR,
    )
    assert result.returncode != 0
    (ok,), (failed,) = read_runs(tmp_path / "0"), read_runs(tmp_path / "1")
    assert ok.run_id != failed.run_id
    assert (ok.exit_code, failed.exit_code) == (0, 1)


def test_resumed_training_continues_the_same_wandb_run(tmp_path):
    first = train_cli(tmp_path / "first", WANDB, "trainer.max_epochs=1")
    second = train_cli(
        tmp_path / "second", WANDB, "trainer.max_epochs=2", f"ckpt_path={first}/checkpoints/last.ckpt"
    )
    (original,), (continued,) = read_runs(first), read_runs(second)
    assert continued.run_id == original.run_id
    assert [row["epoch"] for row in continued.history if "val/acc" in row] == [1]


def test_wandb_disabled_trains_without_run_files(tmp_path):
    train_cli(tmp_path, WANDB, "trainer.max_epochs=1", env={"WANDB_MODE": "disabled"})
    assert (tmp_path / "metrics.json").is_file()
    assert not list(tmp_path.glob("wandb/offline-run-*"))


def test_best_checkpoint_upload_is_off_by_default_and_works_offline(offline_run, tmp_path):
    (run,) = read_runs(offline_run)
    assert run.artifacts == []
    train_cli(tmp_path, WANDB, "trainer.max_epochs=1", "callbacks.report.upload_best_checkpoint=true")
    (uploaded,) = read_runs(tmp_path)
    assert uploaded.artifacts == [f"model-{uploaded.run_id}"]
