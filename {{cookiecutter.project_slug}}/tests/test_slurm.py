"""Multiruns on a real one-node SLURM cluster (`hydra/launcher=slurm`), preempted and requeued.

The cluster (tests/slurm_cluster.py) needs Debian's slurmctld, slurmd, slurm-client and munge.
Without them these tests skip, unless REQUIRE_SLURM=1, when they fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PROJECT_DIR, run_script, script_env, with_tests_on_path
from slurm_cluster import Cluster, missing_programs, slurm_cluster
from wandb_records import read_runs

# Several processes or a cluster per test: `pytest -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow

# 3 epochs of 40 batches; the same seed everywhere, so every job below ends with the same result.
TRAINING = ("trainer.max_epochs=3", "dataset.batch_size=32", "hydra.launcher.cpus_per_task=1")
# Slow enough that a signal sent when epoch 0 is saved lands mid-training (about 4 s remain).
SLOW = ("+callbacks.slow._target_=kill_switch.SlowBatches", "+callbacks.slow.seconds=0.05")
SAME_RESULT = ("val/acc_best", "test/acc", "test/loss", "epoch", "global_step")
TIMEOUT_SECONDS = 600  # generous: 5x the 2 minutes the whole file takes on a quiet machine


def unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_SLURM") == "1":
        pytest.fail(f"REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if missing := missing_programs():
        unavailable(f"no {', '.join(missing)} (apt-get install slurmctld slurmd slurm-client munge)")
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError:
        unavailable("hydra-submitit-launcher is not installed (pip install -e '.[slurm]')")
    with slurm_cluster() as running:
        yield running


def job_env(cluster: Cluster) -> dict[str, str]:
    """SLURM_CONF for the launcher and, through sbatch, for the jobs; tests/ on the path for kill_switch."""
    return with_tests_on_path(script_env(cluster.env))


def multirun(sweep_dir: Path, *overrides: str, env: dict[str, str]) -> subprocess.Popen:
    """`train.py -m hydra/launcher=slurm ...` started; its output goes to <sweep dir>.log."""
    sweep_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir.with_suffix(".log"), "w") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "train.py",
                "-m",
                "hydra/launcher=slurm",
                f"hydra.sweep.dir={sweep_dir}",
                *overrides,
            ],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def finished(launcher: subprocess.Popen, sweep_dir: Path) -> None:
    try:
        launcher.wait(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        launcher.kill()  # submitit waits for a result file that a lost job never writes
        launcher.wait()
    assert launcher.returncode == 0, sweep_dir.with_suffix(".log").read_text()[-3000:]


def metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def two_jobs(cluster, tmp_path_factory) -> Path:
    """A 2-job multirun (seeds 42 and 7) through SLURM; its sweep dir."""
    sweep_dir = tmp_path_factory.mktemp("two-jobs") / "sweep"
    finished(multirun(sweep_dir, *TRAINING, "logger=csv", "seed=42,7", env=job_env(cluster)), sweep_dir)
    return sweep_dir


def test_two_job_multirun_runs_as_a_slurm_job_array_and_writes_both_metrics(two_jobs):
    assert metrics(two_jobs / "0")["test/acc"] > 0.9 and metrics(two_jobs / "1")["test/acc"] > 0.9
    assert metrics(two_jobs / "0") != metrics(two_jobs / "1")  # each job got its own seed
    # submitit's folders: <array id>_<task> for each job of the array
    folders = [path.name for path in (two_jobs / ".submitit").iterdir() if path.is_dir() and "_" in path.name]
    assert sorted(name.partition("_")[2] for name in folders) == ["0", "1"]


def wait_for(condition, what: str, launcher: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        assert launcher.poll() is None, f"the multirun ended before {what}"
        if time.monotonic() > deadline:
            launcher.kill()
            launcher.wait()
            pytest.fail(f"no sign that {what} after {TIMEOUT_SECONDS} s")
        time.sleep(0.05)


# (how the job is told to stop, the signal it gets, its loggers)
PREEMPTIONS = {
    # What SLURM sends ahead of the time limit: the job saves and requeues itself.
    "scancel-signal-usr2": (["scancel", "--signal=USR2"], signal.SIGUSR2, "logger=[wandb,csv]"),
    # SLURM requeues it and sends SIGTERM: the job saves. (W&B's service quits on SIGTERM with
    # the job, so this one logs to CSV; see utils/loggers.py.)
    "scontrol-requeue": (["scontrol", "requeue"], signal.SIGTERM, "logger=csv"),
}


@pytest.mark.parametrize(("command", "signum", "logger"), PREEMPTIONS.values(), ids=PREEMPTIONS)
def test_preempted_job_requeues_and_resumes_in_its_run_dir_to_the_same_result(
    cluster, two_jobs, tmp_path, command, signum, logger
):
    sweep_dir = tmp_path / "sweep"
    launcher = multirun(sweep_dir, *TRAINING, *SLOW, logger, "seed=42", env=job_env(cluster))
    run_dir = sweep_dir / "0"
    wait_for((run_dir / "checkpoints" / "last.ckpt").exists, "epoch 0 was saved", launcher)
    (job_id,) = [path.name for path in (sweep_dir / ".submitit").iterdir() if path.name.isdigit()]
    cluster.run(*command, job_id)
    # SLURM holds a requeued job for about 2 minutes before it may start again; not here.
    wait_for(lambda: cluster.job_state(job_id) == ("PENDING", "BeginTime"), "the job was requeued", launcher)
    cluster.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")
    finished(launcher, sweep_dir)

    assert [path.name for path in sweep_dir.iterdir() if path.is_dir() and path.name[0] != "."] == ["0"]
    job_log = (sweep_dir / ".submitit" / job_id / f"{job_id}_0_log.err").read_text()
    stopped = f"error: stopped by {signum.name}; saved {run_dir}/checkpoints/last.ckpt"
    assert stopped in job_log
    if signum == signal.SIGUSR2:
        assert f"requeued SLURM job {job_id}" in job_log
    assert f"resuming from {run_dir}/checkpoints/last.ckpt" in (run_dir / "train.log").read_text()
    reference = metrics(two_jobs / "0")
    assert {key: metrics(run_dir)[key] for key in SAME_RESULT} == {key: reference[key] for key in SAME_RESULT}
    if "wandb" in logger:
        first, resumed = read_runs(run_dir)
        assert resumed.run_id == first.run_id
        assert (first.exit_code, resumed.exit_code) == (128 + signum, 0)


def test_submitit_local_launcher_runs_a_job(tmp_path):
    sweep_dir = tmp_path / "sweep"
    overrides = ["hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep_dir}", "trainer.max_epochs=1"]
    result = run_script("train.py", "-m", *overrides, "logger=csv", cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-3000:]
    assert metrics(sweep_dir / "0")["epoch"] == 1


def test_lightning_slurm_requeue_is_off_inside_a_slurm_job(compose_config, monkeypatch):
    from pytorch_lightning.plugins.environments import SLURMEnvironment

    from {{ cookiecutter.package_name }}.training import build_trainer

    for name, value in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "12"}.items():
        monkeypatch.setenv(name, value)
    trainer = build_trainer(compose_config("~logger"), logger=False)
    environment = trainer._accelerator_connector.cluster_environment
    assert isinstance(environment, SLURMEnvironment) and not environment.auto_requeue


WANDB_SERVICE_KILLED = """
import contextlib, os, signal, subprocess, sys, wandb
from {{ cookiecutter.package_name }}.utils.loggers import finish_wandb
wandb.init(mode="offline", dir=sys.argv[1])
for child in subprocess.run(["pgrep", "-P", str(os.getpid())], capture_output=True, text=True).stdout.split():
    os.kill(int(child), signal.SIGTERM)  # what SLURM does to every process of a job
    with contextlib.suppress(ChildProcessError):  # reaped by wandb meanwhile
        os.waitpid(int(child), 0)  # until it is gone
finish_wandb(exit_code=143)
print("finished")
"""


def test_a_job_whose_wandb_service_slurm_stopped_still_ends_cleanly(tmp_path):
    result = run_script("-c", WANDB_SERVICE_KILLED, str(tmp_path), cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "finished"
    assert "Traceback" not in result.stderr
