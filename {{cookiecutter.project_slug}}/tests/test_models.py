"""Each network fits each dataset's shapes, and each model survives a fast_dev_run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import DATASETS, MODELS, OFFLINE_DATASET
from hydra.utils import instantiate

from {{ cookiecutter.package_name }}.training import run_training


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_network_maps_dataset_inputs_to_class_logits(compose_config, dataset, model):
    cfg = compose_config(f"dataset={dataset}", f"model={model}")
    net = instantiate(cfg.model).eval()
    logits = net(torch.randn(4, *cfg.dataset.input_shape))
    assert logits.shape == (4, cfg.dataset.num_classes)


@pytest.mark.parametrize("model", MODELS)
def test_fast_dev_run_trains_and_tests_each_model(compose_config, model):
    cfg = compose_config(
        f"dataset={OFFLINE_DATASET}", f"model={model}", "trainer.fast_dev_run=true", "~logger"
    )
    metrics = run_training(cfg)
    assert {"train/loss", "val/acc", "test/acc"} <= metrics.keys()
    written = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert written["test/acc"] == pytest.approx(metrics["test/acc"])


def test_cifar10_stops_with_a_clear_offline_error(compose_config):
    cfg = compose_config("dataset=cifar10", "model=alexnet", "trainer.fast_dev_run=true", "~logger")
    with pytest.raises(RuntimeError, match="dataset=cifar10 is not available offline"):
        run_training(cfg)
