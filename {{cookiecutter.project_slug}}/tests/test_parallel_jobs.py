"""Several trainings at once on one machine: joblib multiruns, each job's share of the threads,
and trials started as `wandb agent` starts them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_DIR, run_script, script_env
from omegaconf import OmegaConf
from wandb.sdk.lib import config_util
from wandb.wandb_agent import AgentProcess
from wandb_records import read_runs

from {{ cookiecutter.package_name }}.sweep import agent_command
from {{ cookiecutter.package_name }}.utils.threads import thread_share

# Several processes or a cluster per test: `pytest -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow

CORES = len(os.sched_getaffinity(0))
JOBLIB = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
# The least training that still writes a run dir, its record and metrics.json.
TINY = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "test=false",
]


def environment(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "record" / "environment.yaml").read_text())


def log_span(run_dir: Path) -> tuple[datetime, datetime]:
    """When a job's train.log starts and ends."""
    stamps = re.findall(
        r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+)\]", (run_dir / "train.log").read_text(), re.M
    )
    first, last = (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f") for stamp in (stamps[0], stamps[-1]))
    return first, last


def test_joblib_jobs_run_at_once_each_with_its_share_dir_and_wandb_run_and_failures_listed_last(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        *JOBLIB,
        "optimizer.lr=0.003,abc,0.01",
        "trainer.max_epochs=1",
        "logger=wandb",
        f"hydra.sweep.dir={sweep}",
        cwd=PROJECT_DIR,
        env={"OMP_NUM_THREADS": None},  # so that each job takes its auto share
    )
    # Job 1 fails in its worker process; the launcher still lists it last, as the basic one does.
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-2:] == [
        f"error: 1 of 3 jobs failed; the others are in {sweep}",
        "error: job 1 (optimizer.lr=abc): optimizer.lr='abc': must be a number > 0",
    ]
    assert sorted(path.name for path in sweep.iterdir()) == [
        "0",
        "2",
        "multirun.yaml",
        "summary.csv",
        "summary.json",
    ]
    summary = json.loads((sweep / "summary.json").read_text())
    assert [(job["job"], job["status"]) for job in summary] == [(0, "ok"), (1, "failed"), (2, "ok")]
    (first,), (second,) = read_runs(sweep / "0"), read_runs(sweep / "2")
    assert first.run_id != second.run_id and first.exit_code == second.exit_code == 0
    assert (first.config["optimizer"]["lr"], second.config["optimizer"]["lr"]) == (0.003, 0.01)
    assert all(json.loads((sweep / job / "metrics.json").read_text())["test/acc"] > 0.5 for job in "02")
    (start_0, end_0), (start_2, end_2) = log_span(sweep / "0"), log_span(sweep / "2")
    assert start_0 < end_2 and start_2 < end_0  # they overlapped in time
    for job in "02":  # each with its share of the cores
        assert environment(sweep / job)["threads"]["torch"] == max(CORES // 2, 1)


def test_ctrl_c_stops_every_running_job_at_a_checkpoint_and_starts_no_other(tmp_path):
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        "train.py",
        *JOBLIB,
        "seed=1,2,3",
        "trainer.max_epochs=1000",
        "callbacks.early_stopping=null",
        "logger=csv",
        f"hydra.sweep.dir={sweep}",
    ]
    # A session of its own stands for the terminal: Ctrl-C signals its whole foreground group.
    launcher = subprocess.Popen(
        command,
        cwd=PROJECT_DIR,
        env=script_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not all((sweep / job / "checkpoints" / "last.ckpt").is_file() for job in "01"):
            assert launcher.poll() is None and time.monotonic() < deadline, "jobs 0 and 1 never trained"
            time.sleep(0.2)
        os.killpg(launcher.pid, signal.SIGINT)
        _, stderr = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode == 130, stderr[-3000:]
    # The workers' own log lines may interleave with the launcher's: read the launcher's.
    lines = [line for line in stderr.splitlines() if line.startswith(("error: multirun", "error: job "))]
    assert len(lines) == 4, stderr[-3000:]
    assert lines[0] == (
        f"error: multirun stopped by SIGINT: 0 of 3 jobs finished, the others are listed below; "
        f"job dirs are in {sweep}"
    )
    for job, seed in ((0, 1), (1, 2)):
        last = sweep / str(job) / "checkpoints" / "last.ckpt"
        assert lines[1 + job] == (
            f"error: job {job} (seed={seed}): stopped by SIGINT; saved {last}; "
            f"resume: python train.py resume={sweep / str(job)}"
        )
        assert "Saved " in (sweep / str(job) / "train.log").read_text()  # by the signal, not an epoch end
    assert lines[3] == "error: job 2 (seed=3): not started: the multirun was stopped by SIGINT"
    assert not (sweep / "2").exists()


# name: (command-line arguments, OMP_NUM_THREADS, parallel jobs, threads each job must use)
THREAD_CASES = {
    "single-run": ([], None, 1, CORES),
    "threads=3-beats-OMP_NUM_THREADS": (["threads=3"], "1", 1, 3),
}


@pytest.mark.parametrize(("args", "omp", "jobs", "threads"), THREAD_CASES.values(), ids=THREAD_CASES)
def test_each_job_trains_with_its_share_of_the_threads(tmp_path, args, omp, jobs, threads):
    dirs = [f"hydra.sweep.dir={tmp_path}"] if "-m" in args else [f"hydra.run.dir={tmp_path}/0"]
    result = run_script(
        "train.py", *args, *TINY, "~logger", *dirs, cwd=PROJECT_DIR, env={"OMP_NUM_THREADS": omp}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in range(jobs):
        used = environment(tmp_path / str(job))["threads"]
        assert used["torch"] == threads, used
        assert f"Threads: {threads} ({used['source']})" in (tmp_path / str(job) / "train.log").read_text()


JOBS_2 = {"_target_": "x.JoblibLauncher", "n_jobs": 2}
# name: (overrides, launcher, processes at once on this machine)
AUTO_SHARE_CASES = {
    "one-process": ([], None, 1),
    "ddp-on-cpu-2-devices": (["trainer.accelerator=cpu", "trainer.devices=2"], None, 2),
    "ddp-on-gpu-leaves-the-cpu-alone": (["trainer.accelerator=gpu", "trainer.devices=2"], None, 1),
    "joblib-n_jobs=2": ([], JOBS_2, 2),
    "joblib-n_jobs=2-of-ddp-2": (["trainer.accelerator=cpu", "trainer.devices=2"], JOBS_2, 4),
    "joblib-n_jobs=-1": ([], {"_target_": "x.JoblibLauncher", "n_jobs": -1}, CORES),
    "another-launcher": ([], {"_target_": "x.ClusterLauncher"}, 1),
}


@pytest.mark.parametrize(
    ("overrides", "launcher", "processes"), AUTO_SHARE_CASES.values(), ids=AUTO_SHARE_CASES
)
def test_auto_share_divides_the_cores_by_the_processes_training_at_once(
    compose_config, monkeypatch, overrides, launcher, processes
):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cfg = compose_config(*overrides)
    threads, source = thread_share(cfg, OmegaConf.create(launcher) if launcher else None)
    assert threads == max(CORES // processes, 1) and source.startswith(f"auto: {CORES} cores")


def test_parallel_trials_of_a_runner_share_the_cores(compose_config, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("TRAIN_PARALLEL_JOBS", "2")  # what a runner with 2 workers gives each trial
    threads, source = thread_share(compose_config(), None)
    assert threads == max(CORES // 2, 1) and "(2 parallel jobs" in source


def test_omp_num_threads_set_by_you_beats_the_auto_share(compose_config, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    launcher = OmegaConf.create({"_target_": "x.JoblibLauncher", "n_jobs": 2})
    assert thread_share(compose_config(), launcher) == (5, "OMP_NUM_THREADS=5")


def agent_args(params: dict) -> dict:
    return {name: {"value": value} for name, value in params.items()}


def start_like_wandb_agent(tmp_path: Path, run_id: str, params: dict, gpu: str) -> AgentProcess:
    """A trial as `wandb agent` starts one (wandb_agent.Agent._command_run): the sweep's command
    line, W&B's variables for the run, its own process group; on the GPU the agent was given."""
    sweep = yaml.safe_load((PROJECT_DIR / "sweep.yaml").read_text())
    env = script_env(
        {
            "WANDB_RUN_ID": run_id,
            "WANDB_SWEEP_ID": "local-sweep",
            "WANDB_DIR": str(tmp_path),
            "WANDB_SWEEP_PARAM_PATH": str(tmp_path / f"config-{run_id}.yaml"),
            "CUDA_VISIBLE_DEVICES": gpu,
            "PROJECT_ROOT": str(tmp_path),
        }
    )
    config_util.save_config_file_from_dict(env["WANDB_SWEEP_PARAM_PATH"], agent_args(params))
    # The agent runs `program` from the dir it was started in; here, wherever pytest runs.
    command = [*agent_command(sweep | {"program": str(PROJECT_DIR / "train.py")}, params), *TINY]
    return AgentProcess(command=command, env=env)


def test_two_agents_trials_at_once_get_their_own_run_dirs_wandb_runs_and_gpus(tmp_path):
    trials = {
        "trial0aa": ({"optimizer.lr": 0.001, "seed": 1}, "0"),
        "trial1bb": ({"optimizer.lr": 0.002, "seed": 2}, "1"),
    }
    processes = [start_like_wandb_agent(tmp_path, run_id, *trial) for run_id, trial in trials.items()]
    assert [process.wait() for process in processes] == [0, 0]
    run_dirs = sorted((tmp_path / "logs" / "runs").glob("*/*"))
    assert len(run_dirs) == 2
    seen = {}
    for run_dir in run_dirs:
        (run,) = read_runs(run_dir)
        params, gpu = trials[run.run_id]
        ran_with = OmegaConf.load(run_dir / "record" / "config.yaml")
        assert {key: OmegaConf.select(ran_with, key) for key in params} == params
        # W&B keeps a swept key's value from the sweep (`seed` here); the others come from train.py.
        assert run.config["optimizer"]["lr"] == params["optimizer.lr"]
        variables = environment(run_dir)["variables"]
        assert (variables["CUDA_VISIBLE_DEVICES"], variables["WANDB_RUN_ID"]) == (gpu, run.run_id)
        seen[run.run_id] = run_dir
    assert set(seen) == set(trials)


def test_parallel_sweep_benchmark_prints_a_table_with_ratios():
    result = run_script(
        "benchmarks/parallel_sweep.py",
        "--repeats",
        "1",
        "--seeds",
        "1",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "--only",  # last: it takes every name after it
        "basic launcher",
        "joblib n_jobs=2",
        cwd=PROJECT_DIR,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| basic", "| joblib"))]
    assert len(rows) == 2 and " 1.00x " in rows[0]
