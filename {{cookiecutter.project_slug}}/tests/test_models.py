"""Each network fits each dataset's shapes, and each model survives a fast_dev_run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import DATASETS, MODELS
from hydra.utils import instantiate

from {{ cookiecutter.package_name }}.training import run_training


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_network_maps_dataset_inputs_to_class_logits(compose_config, dataset, model):
    cfg = compose_config(f"dataset={dataset}", f"model={model}")
    net = instantiate(cfg.model).eval()
    logits = net(torch.randn(4, *cfg.dataset.input_shape))
    assert logits.shape == (4, cfg.dataset.num_classes)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_fast_dev_run_trains_and_tests_every_pair(compose_config, data_dir, dataset, model):
    cfg = compose_config(
        f"dataset={dataset}",
        f"model={model}",
        f"paths.data_dir={data_dir}",
        "trainer.fast_dev_run=true",
        "~logger",
    )
    metrics = run_training(cfg)
    assert {"train/loss", "val/acc", "test/acc"} <= metrics.keys()
    written = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert written["test/acc"] == pytest.approx(metrics["test/acc"])


SPEEDUPS = {
    "channels-last": ("speed.channels_last=true",),
    "compile-eager": ("speed.compile=true", "speed.compile_backend=eager"),
    "mixed-precision-on-cpu": ("speed.mixed_precision=true",),
    "onecycle": ("scheduler=onecycle",),
}


@pytest.mark.parametrize("overrides", SPEEDUPS.values(), ids=SPEEDUPS)
def test_speed_switches_and_onecycle_train(compose_config, overrides):
    cfg = compose_config("model=alexnet", "trainer.fast_dev_run=true", "~logger", *overrides)
    assert run_training(cfg)["test/acc"] >= 0
