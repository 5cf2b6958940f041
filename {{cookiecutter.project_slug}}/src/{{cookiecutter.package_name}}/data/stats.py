"""The per-channel mean and std of a dataset's training images, for its config's `mean`/`std`.

    python -m {{ cookiecutter.package_name }}.data.stats dataset=<name> [overrides ...]

Composes the config as train.py does (the same overrides), loads the dataset and prints the two
lines to paste into configs/dataset/<name>.yaml. The values are in [0, 1] pixel units, the
units batches are normalised in, and come from the training split only (validation and test
images stay unseen), without augmentation.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from hydra.utils import instantiate
from omegaconf import DictConfig

from ..config_checks import check_config
from ..failures import reported
from ..paths import composed_config

if TYPE_CHECKING:
    import torch


def channel_stats(batches: Iterable[torch.Tensor]) -> tuple[list[float], list[float]]:
    """Mean and (population) std per channel over every pixel of (N, C, H, W) batches."""
    import torch  # only once the config is checked: a mistake in it is reported without torch

    count, total, squares = 0, torch.zeros(()), torch.zeros(())
    for images in batches:
        images = images.double()
        count += images.numel() // images.shape[1]
        total = total + images.sum(dim=(0, 2, 3))
        squares = squares + images.square().sum(dim=(0, 2, 3))
    mean = total / count
    std = (squares / count - mean.square()).clamp(min=0).sqrt()
    return mean.tolist(), std.tolist()


def training_images(cfg: DictConfig) -> Iterator[torch.Tensor]:
    """The training split's images in [0, 1]: neither normalised nor augmented."""
    channels = cfg.dataset.input_shape[0]
    module = instantiate(cfg.dataset, mean=[0.0] * channels, std=[1.0] * channels)
    module.setup("fit")
    for batch in module.loader("train", 512, train=False):
        yield module.on_after_batch_transfer(batch, 0)[0]


def stats_lines(overrides: list[str]) -> list[str]:
    """`mean: [...]` and `std: [...]` (4 decimals) of the dataset the overrides choose."""
    cfg = composed_config(overrides)
    check_config(cfg)
    mean, std = channel_stats(training_images(cfg))
    return [f"mean: {rounded(mean)}", f"std: {rounded(std)}"]


def rounded(values: list[float]) -> str:
    return f"[{', '.join(f'{value:.4f}' for value in values)}]"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(args):
        print(__doc__)
        return 0
    print("\n".join(reported(lambda: stats_lines(args))))  # a config mistake: one error line
    return 0


if __name__ == "__main__":
    sys.exit(main())
