"""Training throughput of the template's loop against a plain hand-written PyTorch loop.

    python benchmarks/training_loop.py [--repeats 5] [--epochs 6] [--threads 1]
    python benchmarks/training_loop.py --scaling    # dataset 1x/4x/16x, batch size 32..1024
    python benchmarks/training_loop.py --resnet     # model=resnet on CIFAR-10-shaped tensors
    python benchmarks/training_loop.py --gpu        # AMP, channels_last, torch.compile (GPU only)

All cases run in this one process, their repeats interleaved, on the same data: the default
config's datamodule (digits, batch 64) and network (the MLP, same seed, same init), AdamW and the
cosine schedule stepped per epoch, validation with accuracy after every epoch:

- hand-written loop: shuffle, slice, forward, loss, backward, step; then the validation pass;
- template: the objects `python train.py` builds (`training.build_job` on the composed default
  config: its datamodule, Classifier, callbacks, loggers and Trainer), with the default logger
  (W&B runs offline without a login) and checkpoints into a temp run dir;
- template without loggers and callbacks (`~logger callbacks=none`): what logging, checkpoints,
  early stopping and the figures cost;
- Lightning recipe: the same Classifier fed by a `DataLoader` over a `TensorDataset` (default
  collate), a `pl.Trainer` with its default checkpointing and a CSV logger;
- Lightning floor: a LightningModule that only computes the loss (no metrics, no self.log),
  on the template's loader, with no logger, checkpoint or callback: Lightning's own loop cost.

Throughput: training samples per second over epochs 2..E (the first, with start-up, compile and
warm-up, is not counted), from the start of epoch 2 to the end of training, so each epoch's
validation, logging and checkpointing is included. Time per epoch = training samples / that.
torch uses one intra-op thread in every case (`--threads` to change), so that cases compare
loops rather than thread scheduling.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PROJECT_DIR, benchmark_parser, footer, interleaved, markdown_table, median

from {{ cookiecutter.package_name }}.data.digits import DigitsDataModule
from {{ cookiecutter.package_name }}.data.in_memory import InMemoryDataModule, TensorBatches
from {{ cookiecutter.package_name }}.paths import composed_config
from {{ cookiecutter.package_name }}.training import build_classifier, build_job
from {{ cookiecutter.package_name }}.utils.loggers import wandb_run_finished


class RepeatedDigits(DigitsDataModule):
    """The digits set repeated `repeat` times (all splits grow alike), for the scaling table."""

    def __init__(self, repeat: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repeat = repeat

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        inputs, targets = super().load()["train"]
        return {"train": (inputs.repeat(self.repeat, 1, 1, 1), targets.repeat(self.repeat))}


class SyntheticImages(InMemoryDataModule):
    """Random uint8 images of the configured shape with random labels (CIFAR-10's shape here):
    the real shape's compute without a download. Extra dataset keys (url, data_dir) are ignored."""

    def __init__(self, images: int = 5000, data_dir: Any = None, url: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.images = images

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        generator = torch.Generator().manual_seed(0)
        shape = (self.images, *self.input_shape)
        inputs = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        return {"train": (inputs, torch.randint(0, self.num_classes, (self.images,), generator=generator))}


def job_config(overrides: list[str], run_dir: str) -> DictConfig:
    """The job config `python train.py <overrides>` would run, with its run dir at `run_dir`."""
    cfg = composed_config([f"paths.root_dir={run_dir}", *overrides], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = run_dir
        HydraConfig.instance().set_config(cfg)
        del cfg.hydra
    return cfg


class EpochClock(pl.Callback):
    """The time the second training epoch starts and the time training ends."""

    def __init__(self) -> None:
        self.second_epoch_start = self.end = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1:
            self.second_epoch_start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.end = time.perf_counter()


def throughput(samples_per_epoch: int, epochs: int, started: float, ended: float) -> float:
    """Training samples per second over epochs 2..`epochs`."""
    return samples_per_epoch * (epochs - 1) / (ended - started)


def hand_written(
    cfg: DictConfig, device: str = "cpu", amp: bool = False, channels_last: bool = False
) -> float:
    """The loop a user would write by hand over the datamodule's tensors; samples/s."""
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule: InMemoryDataModule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    (train_x, train_y), (val_x, val_y) = datamodule.splits["train"], datamodule.splits["val"]
    val_x = datamodule.eval_transform(val_x).to(device)
    val_y = val_y.to(device)
    net: nn.Module = instantiate(cfg.model).to(device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)
    optimizer = instantiate(cfg.optimizer)(net.parameters())
    schedule = {key: value for key, value in cfg.scheduler.items() if key != "interval"}
    scheduler = instantiate(schedule)(optimizer)
    criterion = nn.CrossEntropyLoss()
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=amp)
    batch, epochs = cfg.dataset.batch_size, cfg.trainer.max_epochs
    started = 0.0
    for epoch in range(epochs):
        if epoch == 1:
            started = time.perf_counter()
        net.train()
        for index in torch.randperm(len(train_y)).split(batch):
            inputs = datamodule.train_transform(train_x[index]).to(device, memory_format=layout)
            with autocast:
                loss = criterion(net(inputs), train_y[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        net.eval()
        correct = total_loss = 0.0
        with torch.no_grad(), autocast:
            for inputs, targets in zip(val_x.split(512), val_y.split(512), strict=True):
                logits = net(inputs.contiguous(memory_format=layout))
                total_loss += float(criterion(logits, targets)) * len(targets)
                correct += int((logits.argmax(1) == targets).sum())
        assert 0 <= correct / len(val_y) <= 1 and total_loss >= 0
    if device == "cuda":
        torch.cuda.synchronize()
    return throughput(len(train_y), epochs, started, time.perf_counter())


def template(cfg: DictConfig) -> float:
    """The run `python train.py` makes (fit only: the test after it is not timed); samples/s."""
    job = build_job(cfg)
    clock = EpochClock()
    job.trainer.callbacks.append(clock)
    with wandb_run_finished():
        job.trainer.fit(job.model, datamodule=job.datamodule)
    samples = len(job.datamodule.splits["train"][1])  # type: ignore[attr-defined]
    return throughput(samples, cfg.trainer.max_epochs, clock.second_epoch_start, clock.end)


def lightning_recipe(cfg: DictConfig) -> float:
    """The same Classifier fed by DataLoaders over TensorDatasets; samples/s."""
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule: InMemoryDataModule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    train_x, train_y = datamodule.splits["train"]
    val_x, val_y = datamodule.splits["val"]
    train = DataLoader(
        TensorDataset(datamodule.eval_transform(train_x), train_y),
        batch_size=cfg.dataset.batch_size,
        shuffle=True,
    )
    val = DataLoader(TensorDataset(datamodule.eval_transform(val_x), val_y), batch_size=512)
    clock = EpochClock()
    trainer = pl.Trainer(
        max_epochs=cfg.trainer.max_epochs,
        accelerator="cpu",
        devices=1,
        default_root_dir=cfg.paths.output_dir,
        logger=pl.loggers.CSVLogger(cfg.paths.output_dir),
        callbacks=[clock],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(build_classifier(cfg), train_dataloaders=train, val_dataloaders=val)
    return throughput(len(train_y), cfg.trainer.max_epochs, clock.second_epoch_start, clock.end)


class LossOnly(pl.LightningModule):
    """The least a LightningModule does to train and validate: no metrics, nothing logged."""

    def __init__(self, net: nn.Module, optimizer: Callable[..., torch.optim.Optimizer]) -> None:
        super().__init__()
        self.net, self.make_optimizer = net, optimizer
        self.criterion = nn.CrossEntropyLoss()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self.criterion(self.net(batch[0]), batch[1])

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.criterion(self.net(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.make_optimizer(self.parameters())


def lightning_floor(cfg: DictConfig) -> float:
    """Lightning's loop alone, on the template's loader; samples/s."""
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule: InMemoryDataModule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    clock = EpochClock()
    trainer = pl.Trainer(
        max_epochs=cfg.trainer.max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        callbacks=[clock],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = LossOnly(instantiate(cfg.model), instantiate(cfg.optimizer))
    train: TensorBatches = datamodule.train_dataloader()  # type: ignore[assignment]
    trainer.fit(model, train_dataloaders=train, val_dataloaders=datamodule.val_dataloader())
    return throughput(len(train.targets), cfg.trainer.max_epochs, clock.second_epoch_start, clock.end)


def in_fresh_run_dir(case: Callable[[DictConfig], float], overrides: list[str]) -> Callable[[], float]:
    """A case run on the job config of `overrides`, in a run dir of its own each time."""

    def run() -> float:
        with tempfile.TemporaryDirectory(prefix="bench-") as run_dir:
            return case(job_config(overrides, run_dir))

    return run


def loop_cases(overrides: list[str], with_diagnostics: bool = True) -> dict[str, Callable[[], float]]:
    cases = {
        "hand-written PyTorch loop": in_fresh_run_dir(hand_written, overrides),
        "template (`python train.py`)": in_fresh_run_dir(template, overrides),
    }
    if with_diagnostics:
        cases |= {
            "template, `~logger callbacks=none`": in_fresh_run_dir(
                template, [*overrides, "~logger", "callbacks=none"]
            ),
            "Lightning recipe (DataLoader over TensorDataset)": in_fresh_run_dir(lightning_recipe, overrides),
            "Lightning floor (loss-only module, no logger/callbacks)": in_fresh_run_dir(
                lightning_floor, overrides
            ),
        }
    return cases


def samples_table(results: dict[str, list[float]], samples_per_epoch: int) -> str:
    baseline = median(next(iter(results.values())))
    rows = [
        (
            name,
            f"{median(values):,.0f}",
            f"{median(values) / baseline:.2f}x",
            f"{samples_per_epoch / median(values) * 1000:.0f} ms",
        )
        for name, values in results.items()
    ]
    return markdown_table(["case", "samples/s", "vs hand-written", "time per epoch"], rows)


def train_samples(overrides: list[str]) -> int:
    with tempfile.TemporaryDirectory() as run_dir:
        datamodule: InMemoryDataModule = instantiate(job_config(overrides, run_dir).dataset)
    datamodule.setup("fit")
    return len(datamodule.splits["train"][1])


def loop_benchmark(common: list[str], repeats: int) -> None:
    results = interleaved(loop_cases(common), repeats)
    print(samples_table(results, train_samples(common)))


def scaling_benchmark(common: list[str], repeats: int) -> None:
    rows = []
    repeated = f"dataset._target_={__name__}.RepeatedDigits"
    settings = [(f"digits x{k}, batch 64", [repeated, f"+dataset.repeat={k}"]) for k in (1, 4, 16)]
    settings += [(f"digits x1, batch {b}", [f"dataset.batch_size={b}"]) for b in (32, 128, 256, 512, 1024)]
    for label, extra in settings:
        overrides = [*common, *extra]
        results = interleaved(loop_cases(overrides, with_diagnostics=False), repeats)
        hand, ours = (median(values) for values in results.values())
        samples = train_samples(overrides)
        rows.append(
            (
                label,
                f"{samples:,}",
                f"{hand:,.0f}",
                f"{ours:,.0f}",
                f"{ours / hand:.2f}x",
                f"{samples / ours * 1000:.0f} ms",
            )
        )
    headers = [
        "data, batch",
        "train samples",
        "hand-written samples/s",
        "template samples/s",
        "ratio",
        "template time per epoch",
    ]
    print(markdown_table(headers, rows))


def resnet_overrides(images: int) -> list[str]:
    return [
        "dataset=cifar10",
        f"dataset._target_={__name__}.SyntheticImages",
        f"+dataset.images={images}",
        "model=resnet",
    ]


def resnet_benchmark(common: list[str], repeats: int, images: int) -> None:
    overrides = [*common, *resnet_overrides(images)]
    results = interleaved(loop_cases(overrides, with_diagnostics=False), repeats)
    print(
        f"model=resnet (depth 20) on {images:,} CIFAR-10-shaped synthetic images (3x32x32), batch 128, CPU:\n"
    )
    print(samples_table(results, train_samples(overrides)))


def gpu_benchmark(common: list[str], repeats: int, images: int) -> None:
    overrides = [*common, *resnet_overrides(images)]
    speed = ["speed.mixed_precision=true", "speed.channels_last=true"]
    cases = {
        "hand-written, bf16 autocast + channels_last": in_fresh_run_dir(
            lambda cfg: hand_written(cfg, device="cuda", amp=True, channels_last=True), overrides
        ),
        "template, fp32": in_fresh_run_dir(template, overrides),
        "template, mixed precision + channels_last": in_fresh_run_dir(template, [*overrides, *speed]),
        "template, mixed precision + channels_last + compile": in_fresh_run_dir(
            template, [*overrides, *speed, "speed.compile=true"]
        ),
    }
    results = interleaved(cases, repeats)
    print(f"model=resnet on {images:,} CIFAR-10-shaped synthetic images, {torch.cuda.get_device_name()}:\n")
    print(samples_table(results, train_samples(overrides)))


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, repeats=5)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run; the first is not counted")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads in every case")
    parser.add_argument("--images", type=int, default=5000, help="synthetic images for --resnet and --gpu")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--scaling", action="store_true", help="dataset and batch size scaling")
    which.add_argument("--resnet", action="store_true", help="model=resnet on CIFAR-10-shaped data, CPU")
    which.add_argument("--gpu", action="store_true", help="resnet with AMP, channels_last, compile")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is not counted")
    if args.gpu and not torch.cuda.is_available():
        print("GPU benchmark skipped: torch.cuda.is_available() is False on this machine.")
        return 0
    torch.set_num_threads(args.threads)
    os.chdir(PROJECT_DIR)
    common = [
        f"trainer.max_epochs={args.epochs}",
        f"threads={args.threads}",
        "trainer.enable_progress_bar=false",
    ]
    if args.scaling:
        scaling_benchmark(common, args.repeats)
    elif args.resnet:
        resnet_benchmark(common, args.repeats, args.images)
    elif args.gpu:
        gpu_benchmark(common, args.repeats, args.images)
    else:
        loop_benchmark(common, args.repeats)
    print(
        f"\n{footer(args.repeats)} torch threads: {args.threads}; "
        f"epochs per run: {args.epochs} (first not counted)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
