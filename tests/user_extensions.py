"""Day two, as a user does it: a new dataset, model, experiment and specialization added to a
rendered project by following its README's "Extend" section, step by step.

`add_user_extensions(project_dir)` writes the files (and the README rows the README asks for);
`DISCOVERED_TEST_IDS` are tests of the generated suite that exist only if the suite found them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# An in-memory dataset: four seeded Gaussian blobs in 64 dimensions, shown as 8x8 grey images.
BLOBS_MODULE = '''\
"""Four seeded Gaussian blobs in 64 dimensions, as 8x8 grey images: generated, no download."""

from __future__ import annotations

import torch

from .in_memory import Batch, InMemoryDataModule


class BlobsDataModule(InMemoryDataModule):
    def __init__(self, count: int = 600, cluster_std: float = 4.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.count, self.cluster_std = count, cluster_std

    def load(self) -> dict[str, Batch]:
        from sklearn.datasets import make_blobs

        features, labels = make_blobs(
            self.count, n_features=64, centers=self.num_classes, cluster_std=self.cluster_std, random_state=0
        )
        images = torch.sigmoid(torch.as_tensor(features, dtype=torch.float32) / 10).view(-1, 1, 8, 8)
        return {"train": (images, torch.as_tensor(labels))}
'''

BLOBS_CONFIG = """\
# Four seeded Gaussian blobs as 8x8 grey images (data/blobs.py).
_target_: {package}.data.blobs.BlobsDataModule
input_shape: [1, 8, 8]
num_classes: 4
batch_size: 64
val_fraction: 0.1
test_fraction: 0.2
split_seed: 0
mean: [0.0]
std: [1.0]
augment:
  crop_padding: 0
  hflip: false
# The dataset's own settings.
count: 600
cluster_std: 4.0
"""

CNN_MODULE = '''\
"""Two convolutions, global average pooling and a linear layer: a small CNN for any image size."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class CNN(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int = 16) -> None:
        super().__init__()
        channels = input_shape[0]
        self.layers = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * width, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
'''

CNN_CONFIG = """\
# A small CNN: two convolutions, global average pooling, a linear layer (models/cnn.py).
_target_: {package}.models.cnn.CNN
input_shape: ${{dataset.input_shape}}
num_classes: ${{dataset.num_classes}}
width: 16
"""

EXPERIMENT = """\
# @package _global_
# blobs_cnn: the small CNN on the generated blobs, 5 epochs.
defaults:
  - override /dataset: blobs
  - override /model: cnn

tags: [blobs, cnn]
trainer:
  max_epochs: 5
"""

SPECIALIZATION = """\
# @package _global_
# 8x8 blobs need few channels.
model:
  width: 8
"""

# Tests of the generated suite that only exist once it has found the new configs.
DISCOVERED_TEST_IDS = (
    "tests/test_datasets.py::test_dataset_reads_its_format_and_serves_normalised_batches[blobs]",
    "tests/test_models.py::test_fast_dev_run_trains_and_tests_every_pair[cnn-blobs]",
    "tests/test_configs.py::test_every_experiment_composes_and_only_states_deltas[blobs_cnn]",
    "tests/test_configs.py::test_specialization_applies_its_values_to_its_pairing[blobs_cnn]",
)


def add_user_extensions(project_dir: Path) -> None:
    """Add the dataset `blobs`, the model `cnn`, the experiment `blobs_cnn` and the
    specialization `blobs_cnn` to a rendered project, as its README's "Extend" section says."""
    (package_dir,) = (path.parent for path in (project_dir / "src").glob("*/models"))
    package, configs = package_dir.name, project_dir / "configs"
    # A dataset: its module, its config, then the mean/std the README's command prints.
    (package_dir / "data" / "blobs.py").write_text(BLOBS_MODULE)
    (configs / "dataset" / "blobs.yaml").write_text(BLOBS_CONFIG.format(package=package))
    paste_dataset_stats(project_dir, package, "blobs")
    # A model, an experiment, a specialization.
    (package_dir / "models" / "cnn.py").write_text(CNN_MODULE)
    (configs / "model" / "cnn.yaml").write_text(CNN_CONFIG.format(package=package))
    (configs / "experiment" / "blobs_cnn.yaml").write_text(EXPERIMENT)
    (configs / "dataset_model" / "blobs_cnn.yaml").write_text(SPECIALIZATION)
    # The README's tables list them (tests/test_readme.py checks).
    readme = project_dir / "README.md"
    text = readme.read_text()
    additions = (
        ("dataset", "blobs"),
        ("model", "cnn"),
        ("experiment", "blobs_cnn"),
        ("dataset_model", "blobs_cnn"),
    )
    for group, option in additions:
        text = add_option_to_config_table(text, group, option)
    text = text.replace(
        "| experiment | what it runs |\n|---|---|\n",
        "| experiment | what it runs |\n|---|---|\n| `blobs_cnn` | the small CNN on the generated blobs |\n",
    )
    readme.write_text(text)


def paste_dataset_stats(project_dir: Path, package: str, dataset: str) -> None:
    """Run `python -m <package>.data.stats dataset=<name>` and put its lines into the config."""
    result = subprocess.run(
        [sys.executable, "-m", f"{package}.data.stats", f"dataset={dataset}"],
        cwd=project_dir,
        env={**os.environ, "PYTHONPATH": str(project_dir / "src"), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    mean, std = result.stdout.strip().splitlines()
    config = project_dir / "configs" / "dataset" / f"{dataset}.yaml"
    config.write_text(config.read_text().replace("mean: [0.0]", mean).replace("std: [1.0]", std))


def add_option_to_config_table(readme: str, group: str, option: str) -> str:
    """The README with `option` appended to the options cell of `group`'s row."""
    lines = readme.splitlines(keepends=True)
    rows = [i for i, line in enumerate(lines) if line.startswith(f"| `{group}` |")]
    if not rows:  # a group the table does not list (tests/test_readme.py knows which)
        return readme
    (index,) = rows
    first, group_cell, options, *rest = lines[index].split("|")
    lines[index] = "|".join([first, group_cell, f"{options.rstrip()}, `{option}` ", *rest])
    return "".join(lines)
