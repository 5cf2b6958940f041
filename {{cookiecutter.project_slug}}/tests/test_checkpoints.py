"""Checkpoints are data: loading one never runs code, a broken one is one clear line, and a
write that dies midway leaves the previous checkpoint whole."""

from __future__ import annotations

import errno
import io
import os
import queue
import random
import shlex
import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import PROJECT_DIR, options, run_script, train_cli
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from {{ cookiecutter.package_name }}.checkpoints import (
    CheckpointFiles,
    allowed_target,
    load_checkpoint,
    load_classifier,
)
from {{ cookiecutter.package_name }}.errors import CheckpointError
from {{ cookiecutter.package_name }}.models.classifier import Classifier
from {{ cookiecutter.package_name }}.utils.loggers import WANDB_RUN_ID_KEY

PACKAGE = "{{ cookiecutter.package_name }}"
PREDICT = f"{PACKAGE}.predict"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A real one-epoch run dir whose checkpoints the tests tamper with."""
    return train_cli(tmp_path_factory.mktemp("checkpoints") / "run", "trainer.max_epochs=1", "logger=csv")


class RunsCode:
    """Pickles as a call of os.system: what a crafted checkpoint smuggles in."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return os.system, (self.command,)


def touch(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def real_checkpoint(run: Path) -> dict[str, Any]:
    return load_checkpoint(run / "checkpoints" / "best.ckpt")


def with_pickled_call(run: Path, marker: Path) -> dict[str, Any]:
    """A real checkpoint plus an object that runs `touch marker` when unpickled."""
    return real_checkpoint(run) | {"extra": RunsCode(touch(marker))}


# name -> a config that makes Hydra's instantiate act on a marker path
FOREIGN_CALLS = {
    # Hydra 1.3.8's own blocklist stops this one too, but only as a traceback from instantiate.
    "os-system": lambda marker: {"_target_": "os.system", "_args_": [touch(marker)]},
    # Hydra lets file writes through: a .pth file in site-packages or ~/.bashrc runs code later.
    "file-write": lambda marker: {
        "_target_": "pathlib.Path.write_text",
        "_args_": [{"_target_": "pathlib.Path", "_args_": [str(marker)]}, "import os"],
    },
}


def with_foreign_network(run: Path, call: dict[str, Any]) -> dict[str, Any]:
    """A real checkpoint, still plain data, whose network config is `call`."""
    checkpoint = real_checkpoint(run)
    checkpoint["hyper_parameters"]["net"] = call
    return checkpoint


def truncated(run: Path) -> bytes:
    data = (run / "checkpoints" / "best.ckpt").read_bytes()
    return data[: len(data) // 2]


def corrupt_pickle(run: Path) -> bytes:
    """A whole zip archive whose pickled record is garbage."""
    source, out = zipfile.ZipFile(run / "checkpoints" / "best.ckpt"), io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for item in source.infolist():
            garbage = item.filename.endswith("data.pkl")
            archive.writestr(item, b"\x80\x02garbage" if garbage else source.read(item))
    return out.getvalue()


def write(path: Path, content: Any) -> Path:
    """Bytes as they are, anything else through torch.save."""
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return path


def test_the_crafted_checkpoints_do_run_code_when_loaded_unsafely(run, tmp_path):
    """The payloads the refusals below are tested with are real."""
    pickled = write(tmp_path / "pickled.ckpt", with_pickled_call(run, tmp_path / "unpickled"))
    torch.load(pickled, weights_only=False)
    assert (tmp_path / "unpickled").exists()

    instantiate(FOREIGN_CALLS["file-write"](tmp_path / "instantiated"))
    assert (tmp_path / "instantiated").exists()


# name -> (content of the .ckpt given a run dir and a marker path, what the error line says)
UNSAFE_OR_BROKEN = {
    "pickle-that-runs-code": (
        with_pickled_call,
        f"not safe to load: it would import {os.system.__module__}.system",
    ),
    "truncated": (lambda run, _: truncated(run), "is not a whole checkpoint"),
    "random-bytes": (lambda *_: random.Random(0).randbytes(4096), "is not a whole checkpoint"),
}


def png(tmp_path: Path) -> Path:
    path = tmp_path / "digit.png"
    Image.new("L", (8, 8), color=128).save(path)
    return path


# name -> the command line that reads a checkpoint, given the checkpoint and a scratch dir
ENTRY_POINTS = {
    "eval": lambda ckpt, tmp: ["eval.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp}/out"],
    "predict": lambda ckpt, tmp: ["-m", PREDICT, str(ckpt), str(png(tmp))],
    "resume": lambda ckpt, tmp: [
        "train.py",
        f"ckpt_path={ckpt}",
        "trainer.max_epochs=2",
        f"hydra.run.dir={tmp}/out",
    ],
}


def assert_refused(command: list[str], ckpt: Path, message: str) -> None:
    result = run_script(*command, cwd=PROJECT_DIR)
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {ckpt} ") and message in line, line


# Every entry point is given the file that would run code; the broken files, which the same
# loader refuses the same way, are shared out among them (each start costs a fresh interpreter).
REFUSALS = [
    *((entry, "pickle-that-runs-code") for entry in ENTRY_POINTS),
    ("eval", "random-bytes"),
    ("predict", "truncated"),
    ("resume", "truncated"),
]


@pytest.mark.parametrize(
    ("entry_point", "kind"), REFUSALS, ids=[f"{kind}-{entry}" for entry, kind in REFUSALS]
)
def test_unsafe_or_broken_checkpoint_is_one_line_and_runs_nothing(run, tmp_path, entry_point, kind):
    content, message = UNSAFE_OR_BROKEN[kind]
    marker = tmp_path / "marker"
    # Inside the run dir, beside its config, where predict looks for it.
    ckpt = write(run / "checkpoints" / f"{tmp_path.name}.ckpt", content(run, marker))
    assert_refused(ENTRY_POINTS[entry_point](ckpt, tmp_path), ckpt, message)
    assert not marker.exists()


# Each foreign call through one entry point that builds the network from a checkpoint (a fresh
# interpreter each); where in the hyperparameters it hides is covered in-process below.
@pytest.mark.parametrize(("call", "entry_point"), [("os-system", "eval"), ("file-write", "predict")])
def test_hyperparameters_naming_foreign_code_are_refused(run, tmp_path, call, entry_point):
    marker = tmp_path / "marker"
    config = FOREIGN_CALLS[call](marker)
    ckpt = write(run / "checkpoints" / f"{tmp_path.name}.ckpt", with_foreign_network(run, config))
    assert_refused(
        ENTRY_POINTS[entry_point](ckpt, tmp_path), ckpt, f"would call _target_={config['_target_']!r}"
    )
    assert not marker.exists()


# name -> (where in the hyperparameters the foreign _target_ goes, how the file is loaded)
FOREIGN_TARGET_PLACES = {
    "network": (lambda hp, call: hp.update(net=call), load_classifier),
    "network-argument": (lambda hp, call: hp["net"].update(hidden_dims=call), load_classifier),
    "optimizer": (lambda hp, call: hp.update(optimizer=call), load_classifier),
    "inside-a-list": (lambda hp, call: hp["net"].update(hidden_dims=[64, call]), load_classifier),
    "lightning-style-load": (lambda hp, call: hp.update(net=call), Classifier.load_from_checkpoint),
}


@pytest.mark.parametrize(("place", "load"), FOREIGN_TARGET_PLACES.values(), ids=FOREIGN_TARGET_PLACES)
def test_a_foreign_target_anywhere_in_the_hyperparameters_is_refused(run, tmp_path, place, load):
    checkpoint, marker = real_checkpoint(run), tmp_path / "marker"
    place(checkpoint["hyper_parameters"], FOREIGN_CALLS["file-write"](marker))
    ckpt = write(tmp_path / "foreign.ckpt", checkpoint)
    with pytest.raises(CheckpointError, match=rf"^{ckpt} is not safe to load: .*'pathlib\.Path\.write_text'"):
        load(ckpt)
    assert not marker.exists()


TARGETS = {
    "shipped-network": (f"{PACKAGE}.models.resnet.ResNet", True),
    "optimizer": ("torch.optim.SGD", True),
    "scheduler": ("torch.optim.lr_scheduler.OneCycleLR", True),
    "os-system": ("os.system", False),
    "builtin-eval": ("builtins.eval", False),
    "imported-into-an-allowed-module": (f"{PACKAGE}.models.classifier.instantiate", False),
    "reached-through-an-allowed-module": ("torch.optim.optimizer.torch.hub.load", False),
    "lookalike-module-name": ("torch.optimizers.SGD", False),
    "missing": ("torch.optim.NoSuchOptimizer", False),
    "not-a-string": (42, False),
}


@pytest.mark.parametrize(("target", "allowed"), TARGETS.values(), ids=TARGETS)
def test_only_code_defined_in_the_allowed_modules_is_a_valid_target(target, allowed):
    assert allowed_target(target) == allowed


def test_good_checkpoint_rebuilds_the_trained_network(run):
    model = load_classifier(run / "checkpoints" / "best.ckpt").eval()
    weights = real_checkpoint(run)["state_dict"]
    assert all(torch.equal(tensor, weights[name]) for name, tensor in model.state_dict().items())
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


# name -> (content given a run dir, what the error says after the file name)
LOAD_ERRORS = {
    "missing": (None, "is not a checkpoint file: it is missing"),
    "directory": ("dir", "is not a checkpoint file: it is a directory"),
    "empty": (lambda _: b"", "is not a whole checkpoint (0 bytes"),
    "truncated": (truncated, "is not a whole checkpoint"),
    "corrupt-pickle": (corrupt_pickle, "is corrupt: "),
    "not-a-dict": (lambda _: [torch.ones(1)], "holds a list, not a checkpoint dict"),
}


@pytest.mark.parametrize(("content", "message"), LOAD_ERRORS.values(), ids=LOAD_ERRORS)
def test_load_errors_are_one_line_that_names_the_file(run, tmp_path, content, message):
    path = tmp_path / "x.ckpt"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        write(path, content(run))
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert str(raised.value).startswith(f"{path} {message}") and "\n" not in str(raised.value)


@pytest.fixture(scope="module")
def every_optimizer_and_scheduler(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """One-epoch runs of every optimizer with every scheduler, as one multirun (one interpreter
    for all), by (optimizer, scheduler). The W&B logger (offline) is on: it stores its run id
    in every checkpoint."""
    sweep_dir = tmp_path_factory.mktemp("optimizers")
    result = run_script(
        "train.py",
        "-m",
        f"optimizer={','.join(options('optimizer'))}",
        f"scheduler={','.join(options('scheduler'))}",
        "trainer.max_epochs=1",
        "logger=wandb",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=PROJECT_DIR,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {}
    for job in sweep_dir.glob("[0-9]*"):
        choices = OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra.runtime.choices
        runs[choices.optimizer, choices.scheduler] = job
    return runs


@pytest.mark.parametrize("scheduler", options("scheduler"))
@pytest.mark.parametrize("optimizer", options("optimizer"))
def test_everything_the_project_writes_in_a_checkpoint_is_plain_data(
    every_optimizer_and_scheduler, optimizer, scheduler
):
    run = every_optimizer_and_scheduler[optimizer, scheduler]
    for name in ("best.ckpt", "last.ckpt"):
        path = run / "checkpoints" / name
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
        checkpoint = load_checkpoint(path)  # torch's weights_only loader, no extra safe globals
        assert isinstance(checkpoint[WANDB_RUN_ID_KEY], str) and checkpoint["optimizer_states"]


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    files, path = CheckpointFiles(), tmp_path / "last.ckpt"
    files.save_checkpoint({"step": 1, "weights": torch.ones(1000)}, path)
    real_save = torch.save

    def half_then_disk_full(obj: Any, file: Any, *args: Any, **kwargs: Any) -> None:
        buffer = io.BytesIO()
        real_save(obj, buffer)
        file.write(buffer.getvalue()[: buffer.tell() // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_disk_full)
    with pytest.raises(OSError, match="No space left"):
        files.save_checkpoint({"step": 2, "weights": torch.zeros(1000)}, path)
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_save_interrupted_by_a_save_of_the_same_file_still_completes(tmp_path, monkeypatch):
    # What happens when a signal handler saves last.ckpt while a save of it is under way.
    files, path, real_save = CheckpointFiles(), tmp_path / "last.ckpt", torch.save

    def save_after_a_nested_save(obj: Any, file: Any, *args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(torch, "save", real_save)
        files.save_checkpoint({"step": "nested"}, path)
        real_save(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_after_a_nested_save)
    files.save_checkpoint({"step": "outer"}, path)
    assert load_checkpoint(path)["step"] == "outer"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# Saves 16 MB checkpoints in a loop, printing each step; the last save writes half, then hangs.
WRITER = """
import sys, torch
from {{ cookiecutter.package_name }}.checkpoints import CheckpointFiles
files, path, real_save = CheckpointFiles(), sys.argv[1], torch.save

def half_then_hang(obj, file, *args, **kwargs):
    real_save(obj, file)
    file.truncate(file.tell() // 2)
    file.flush()
    print("half written", flush=True)
    sys.stdin.read()

for step in range(1, 21):
    files.save_checkpoint({"step": step, "weights": torch.full((4_000_000,), float(step))}, path)
    print(step, flush=True)
torch.save = half_then_hang
files.save_checkpoint({"step": 21, "weights": torch.zeros(4_000_000)}, path)
"""


def another_filesystem(than: Path) -> dict[str, str]:
    """TMPDIR on another filesystem, as a tmpfs /tmp is: where a save staged in $TMPDIR and
    moved over would be copied into place, non-atomically. {} if there is none to hand."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != than.stat().st_dev:
        return {"TMPDIR": str(shm)}
    return {}


def test_readers_and_a_killed_writer_never_see_part_of_a_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        cwd=PROJECT_DIR,
        env={**os.environ, **another_filesystem(tmp_path)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in writer.stdout], daemon=True).start()
    try:
        assert lines.get(timeout=300) == "1"
        seen, last = set(), ""
        while last != "half written":
            assert writer.poll() is None, "the writer died"
            checkpoint = load_checkpoint(path)  # raises on a partial file
            assert torch.all(checkpoint["weights"] == checkpoint["step"])
            seen.add(checkpoint["step"])
            while not lines.empty():
                last = lines.get()
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    finally:
        writer.kill()
    assert len(seen) > 1  # the reads raced the writes
    assert load_checkpoint(path)["step"] == 20
    assert len(list(tmp_path.glob(".last.ckpt.*.partial"))) == 1  # the half-written file, beside it
    CheckpointFiles().save_checkpoint({"step": 22}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
