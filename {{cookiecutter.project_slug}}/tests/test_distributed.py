"""DDP for real, on 2 CPU processes (`trainer=ddp_cpu`): the same results as one process, the
true epoch and step, files written by rank 0 only, every test digit counted once, and a multirun
whose jobs each start their own ranks. GPU presets on a machine without GPUs stop at the check."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_DIR, run_script, train_cli, with_tests_on_path
from omegaconf import OmegaConf
from wandb_records import read_runs

from {{ cookiecutter.package_name }}.checkpoints import load_checkpoint
from {{ cookiecutter.package_name }}.config_checks import check_config
from {{ cookiecutter.package_name }}.data.in_memory import TensorBatches
from {{ cookiecutter.package_name }}.errors import ConfigError
from {{ cookiecutter.package_name }}.utils.loggers import keep_csv_history

# Several processes or a cluster per test: `pytest -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow

TEST_DIGITS = 359  # digits: 1,797 images, 20% held out for test, 10% (180) for validation
EPOCHS, STEPS_PER_EPOCH = 2, 20  # ceil(1258 training images / 64)
# Each rank's batch is half of one process's: the global batches, hence the steps, are the same.
STRATEGIES = {
    "auto": ["dataset.batch_size=64"],
    "ddp": ["trainer=ddp_cpu", "dataset.batch_size=32"],
    "ddp_spawn": ["trainer=ddp_cpu", "trainer.strategy=ddp_spawn", "dataset.batch_size=32"],
}
DDP_STRATEGIES = ["ddp", "ddp_spawn"]
TRAINING = [f"trainer.max_epochs={EPOCHS}", "logger=[wandb,csv]"]
# DDP and one process train on the same batches with the same gradients up to rounding; dropout
# draws differ (each rank draws masks for its half of the batch), so the weights do too.
ACCURACY_TOLERANCE = 0.02  # 7 of the 359 test digits


@pytest.fixture(scope="module")
def strategy_run(tmp_path_factory) -> Callable[[str], Path]:
    """Return `strategy_run(name)`: the run dir of a 2-epoch training under that strategy,
    trained on first use."""
    runs: dict[str, Path] = {}

    def _run(name: str) -> Path:
        if name not in runs:
            out = tmp_path_factory.mktemp(name) / "run"
            runs[name] = train_cli(out, *STRATEGIES[name], *TRAINING)
        return runs[name]

    return _run


def read_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_metrics_json_reports_the_true_epoch_and_step(strategy_run, strategy):
    run_dir = strategy_run(strategy)
    metrics = read_metrics(run_dir)
    assert (metrics["epoch"], metrics["global_step"]) == (EPOCHS, EPOCHS * STEPS_PER_EPOCH)
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == metrics["global_step"]


@pytest.mark.parametrize("strategy", DDP_STRATEGIES)
def test_ddp_agrees_with_one_process(strategy_run, strategy):
    ddp, single = read_metrics(strategy_run(strategy)), read_metrics(strategy_run("auto"))
    for name in ("test/acc", "val/acc_best"):
        assert abs(ddp[name] - single[name]) <= ACCURACY_TOLERANCE, name


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_test_accuracy_counts_every_test_digit_once(strategy_run, strategy):
    # Synced over both ranks, the accuracy is a count out of 359; rank 0's alone would be out of
    # its 180, and leaving out the odd digit (to give the ranks equal shares) would make it 358.
    correct = read_metrics(strategy_run(strategy))["test/acc"] * TEST_DIGITS
    assert correct == pytest.approx(round(correct), abs=1e-3)


@pytest.mark.parametrize("strategy", DDP_STRATEGIES)
def test_only_rank_zero_writes_files(strategy_run, strategy):
    def files(run_dir: Path) -> set[str]:  # W&B's own files are checked below
        return {str(path.relative_to(run_dir)) for path in run_dir.rglob("*") if path.is_file()} - {
            str(path.relative_to(run_dir)) for path in run_dir.glob("wandb/**/*")
        }

    # Rank 1 of `ddp` is a process of its own, with its own log; `ddp_spawn`'s ranks log in the main one.
    own_log = {"train_ddp_process_1.log"} if strategy == "ddp" else set()
    assert files(strategy_run(strategy)) == files(strategy_run("auto")) | own_log
    hydra = OmegaConf.load(strategy_run(strategy) / ".hydra" / "hydra.yaml").hydra
    assert hydra.job.name == "train"  # not overwritten by rank 1's


@pytest.mark.parametrize("strategy", DDP_STRATEGIES)
def test_loggers_record_the_run_once(strategy_run, strategy):
    run_dir = strategy_run(strategy)
    test_acc = read_metrics(run_dir)["test/acc"]
    (run,) = read_runs(run_dir)
    assert run.exit_code == 0 and run.summary["test/acc"] == pytest.approx(test_acc)
    with open(run_dir / "csv" / "metrics.csv") as rows:
        tested = [float(row["test/acc"]) for row in csv.DictReader(rows) if row["test/acc"]]
    assert tested == [pytest.approx(test_acc)]


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Callable[[int], tuple[list[str], subprocess.CompletedProcess[str]]]:
    """Return `stopped_run(rank)`: the arguments and outcome of a `ddp` training that SIGTERM,
    sent to global rank `rank` alone after batch 5, stopped; run on first use."""
    runs: dict[int, tuple[list[str], subprocess.CompletedProcess[str]]] = {}

    def _run(rank: int) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        if rank not in runs:
            out = tmp_path_factory.mktemp(f"stopped-{rank}") / "run"
            args = [*STRATEGIES["ddp"], *TRAINING, f"hydra.run.dir={out}"]
            kill = [
                "+callbacks.kill._target_=kill_switch.SendSignal",
                "+callbacks.kill.name=SIGTERM",
                "+callbacks.kill.epoch=0",
                "+callbacks.kill.batch=5",
                f"+callbacks.kill.rank={rank}",
            ]
            # The child rank imports kill_switch too.
            env = with_tests_on_path(dict(os.environ))
            runs[rank] = args, run_script("train.py", *args, *kill, cwd=PROJECT_DIR, env=env)
        return runs[rank]

    return _run


def run_dir_of(args: list[str]) -> Path:
    return Path(next(arg for arg in args if arg.startswith("hydra.run.dir=")).partition("=")[2])


# `kill <pid>` reaches one process: rank 0 is the one train.py started, rank 1 its child.
@pytest.mark.parametrize("rank", [0, 1])
def test_a_signal_to_one_rank_stops_every_rank_at_the_same_batch(stopped_run, rank):
    args, result = stopped_run(rank)
    out = run_dir_of(args)
    last = out / "checkpoints" / "last.ckpt"
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: stopped by SIGTERM; saved {last}; resume: python train.py resume={out}"
    )
    saved = load_checkpoint(last)
    assert (saved["epoch"], saved["global_step"]) == (0, 6)


def test_resumed_ddp_run_ends_as_if_uninterrupted(stopped_run, strategy_run):
    args, _ = stopped_run(0)
    last = run_dir_of(args) / "checkpoints" / "last.ckpt"
    # What `resume=<run dir>` runs; it refuses a run dir whose overrides name a _target_ (the kill).
    result = run_script("train.py", *args, f"ckpt_path={last}", cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-3000:]
    reference = read_metrics(strategy_run("ddp"))
    assert read_metrics(run_dir_of(args)) == {
        name: pytest.approx(value, abs=0) for name, value in reference.items()
    }


def test_ddp_multirun_runs_each_job_once_per_rank_with_its_own_overrides(tmp_path):
    # Every log record starts with the id of the process that wrote it.
    log_format = "hydra.job_logging.formatters.simple.format='pid=%(process)d %(message)s'"
    result = run_script(
        "train.py",
        "-m",
        "trainer=ddp_cpu",
        "seed=1,2",  # two jobs tell a rank 1 per job from one shared: a third adds only time
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "test=false",
        "~logger",
        log_format,
        f"paths.root_dir={tmp_path}",
        cwd=PROJECT_DIR,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "logs" / "multiruns").glob("*/*")  # no child ran a sweep of its own
    assert sorted(path.name for path in sweep_dir.iterdir() if path.is_dir()) == ["0", "1"]
    processes: dict[str, set[str]] = {"rank 0": set(), "rank 1": set()}
    for job, seed in enumerate((1, 2)):
        for rank, log in enumerate(("train.log", "train_ddp_process_1.log")):
            text = (sweep_dir / str(job) / log).read_text()
            assert len(re.findall(r"^pid=\d+ Run dir: ", text, re.MULTILINE)) == 1, (job, log)
            assert re.search(rf"^seed: {seed}$", text, re.MULTILINE), (job, log)
            assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in text, (job, log)
            (pid,) = set(re.findall(r"^pid=(\d+) ", text, re.MULTILINE))
            processes[f"rank {rank}"].add(pid)
        assert (sweep_dir / str(job) / "metrics.json").is_file()
    # One multirun process is rank 0 of every job; each job started a rank 1 of its own.
    assert len(processes["rank 0"]) == 1 and len(processes["rank 1"]) == 2
    assert not processes["rank 0"] & processes["rank 1"]


def noise(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A stand-in for augmentation: a random number added to each sample."""
    return images + torch.rand(len(images), generator=generator)


def fake_ranks(monkeypatch, world: int) -> Callable[[int], None]:
    """Make torch.distributed report a process group of `world` ranks; return a rank setter."""
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: world)
    return lambda rank: monkeypatch.setattr(torch.distributed, "get_rank", lambda: rank)


def seeded_loader(count: int, shuffle: bool) -> TensorBatches:
    torch.manual_seed(0)  # the same seed on every rank, as seed_everything does
    inputs, targets = torch.zeros(count), torch.arange(count)
    return TensorBatches(inputs, targets, batch_size=3, shuffle=shuffle, transform=noise)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("count", [10, 11])
def test_each_rank_gets_its_share_of_the_data(monkeypatch, world, count):
    set_rank = fake_ranks(monkeypatch, world)

    def shares(shuffle: bool) -> tuple[list[list[int]], list[float]]:
        indices, draws = [], []
        for rank in range(world):
            set_rank(rank)
            loader = seeded_loader(count, shuffle)
            batches = list(loader)
            assert len(batches) == len(loader)
            indices.append([index for _, targets in batches for index in targets.tolist()])
            draws += [value for inputs, _ in batches for value in inputs.tolist()]
        return indices, draws

    (training, draws), (evaluation, _) = shares(shuffle=True), shares(shuffle=False)
    # Training: equal shares (every optimizer step waits for every rank), the remainder left out.
    assert {len(share) for share in training} == {count // world}
    assert len(set().union(*map(set, training))) == count - count % world
    assert len(set(draws)) == len(draws)  # augmentation: no two ranks draw the same numbers
    # Evaluation: every sample exactly once over the ranks.
    assert sorted(index for share in evaluation for index in share) == list(range(count))


def test_a_rank_resumes_its_share_mid_epoch(monkeypatch):
    fake_ranks(monkeypatch, world=2)(1)
    uninterrupted = seeded_loader(40, shuffle=True)
    list(uninterrupted)  # the first epoch
    expected = [(inputs.tolist(), targets.tolist()) for inputs, targets in uninterrupted]

    interrupted = seeded_loader(40, shuffle=True)
    list(interrupted)
    second_epoch = iter(interrupted)
    next(second_epoch), next(second_epoch)
    resumed = seeded_loader(40, shuffle=True)
    resumed.load_state_dict(interrupted.state_dict())
    assert [(inputs.tolist(), targets.tolist()) for inputs, targets in resumed] == expected[2:]


def test_only_rank_zero_rewrites_the_metrics_csv_of_a_resumed_run(tmp_path, monkeypatch):
    from pytorch_lightning.loggers import CSVLogger
    from pytorch_lightning.utilities import rank_zero_only

    logger = CSVLogger(tmp_path, name="csv", version="")
    path = Path(logger.log_dir) / "metrics.csv"
    path.parent.mkdir(parents=True)
    path.write_text("epoch,step,val/acc\n0,9,0.5\n")
    os.utime(path, ns=(0, 0))
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    keep_csv_history(logger)  # rank 0 may be rewriting it at this moment
    assert path.stat().st_mtime_ns == 0


# name: (overrides, CUDA GPUs and whether an Apple GPU is there, the error)
MISSING_HARDWARE = {
    "mps-without-apple-gpu": (
        ["trainer=mps"],
        (2, False),
        "trainer.accelerator=mps: this machine has no Apple GPU (MPS); "
        "train on CPU with trainer=cpu, or trainer=ddp_cpu for 2 DDP processes",
    ),
    "gpu-without-any": (
        ["trainer=gpu"],
        (0, False),
        "trainer.accelerator=gpu: this machine has no GPU (CUDA or MPS); "
        "train on CPU with trainer=cpu, or trainer=ddp_cpu for 2 DDP processes",
    ),
    "cuda-on-a-mac": (
        ["trainer.accelerator=cuda"],
        (0, True),
        "trainer.accelerator=cuda: this machine has no CUDA GPU; "
        "train on CPU with trainer=cpu, or trainer=ddp_cpu for 2 DDP processes",
    ),
    "more-gpus-than-there-are": (
        ["trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=4"],
        (2, False),
        "trainer.devices=4: more devices than the 2 GPU (CUDA or MPS) this machine has",
    ),
    "a-gpu-index-that-does-not-exist": (
        ["trainer=gpu", "trainer.devices=[0,2]"],
        (2, False),
        "trainer.devices=[0, 2]: more devices than the 2 GPU (CUDA or MPS) this machine has",
    ),
}


@pytest.mark.parametrize(("overrides", "gpus", "message"), MISSING_HARDWARE.values(), ids=MISSING_HARDWARE)
def test_missing_gpu_is_a_config_error(compose_config, machine_gpus, overrides, gpus, message):
    machine_gpus(cuda=gpus[0], mps=gpus[1])
    with pytest.raises(ConfigError) as error:
        check_config(compose_config(*overrides))
    assert str(error.value) == message


@pytest.mark.parametrize(
    "overrides",
    [["trainer=gpu", "trainer.devices=2"], ["trainer=ddp"], ["trainer=mps"]],
    ids=["two-of-two", "all-of-them", "mps"],
)
def test_gpus_that_are_there_pass(compose_config, machine_gpus, overrides):
    machine_gpus(cuda=2, mps=True)
    check_config(compose_config(*overrides))


def test_missing_gpu_stops_train_py_with_one_line_before_the_run_dir(tmp_path):
    # CUDA_VISIBLE_DEVICES="" hides any CUDA GPU this machine has.
    result = run_script(
        "train.py", "trainer.accelerator=cuda", f"paths.root_dir={tmp_path}", cwd=PROJECT_DIR,
        env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert result.stderr.strip().splitlines() == [
        "error: trainer.accelerator=cuda: this machine has no CUDA GPU; "
        "train on CPU with trainer=cpu, or trainer=ddp_cpu for 2 DDP processes"
    ]
    assert result.returncode == 2
    assert list(tmp_path.iterdir()) == []
