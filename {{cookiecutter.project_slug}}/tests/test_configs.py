"""Every option of every group composes, and specializations apply to exactly their pairing."""

from __future__ import annotations

import pytest
from conftest import CONFIG_DIR, DATASETS, EXPERIMENTS, MODELS, options
from omegaconf import OmegaConf

from {{ cookiecutter.package_name }}.config_checks import check_config


def test_groups_have_the_documented_options():
    assert {"digits", "cifar10"} <= set(DATASETS)
    assert {"mlp", "alexnet"} <= set(MODELS)
    assert {"aplite", "nglite"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_every_dataset_model_pair_composes_and_resolves(compose_config, dataset, model):
    cfg = compose_config(f"dataset={dataset}", f"model={model}")
    check_config(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert resolved["model"]["input_shape"] == resolved["dataset"]["input_shape"]
    assert resolved["model"]["num_classes"] == resolved["dataset"]["num_classes"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_only_states_deltas(compose_config, experiment):
    cfg = compose_config(f"+experiment={experiment}")
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    text = (CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text()
    assert text.startswith("# @package _global_")
    assert "override /dataset:" in text and "override /model:" in text


@pytest.mark.parametrize(
    ("dataset", "model", "num_layers"),
    [("cifar10", "alexnet", 5), ("digits", "alexnet", 7)],
    ids=["cifar10_alexnet-specialized", "digits_alexnet-default"],
)
def test_alexnet_depth_is_specialized_for_cifar10_only(compose_config, dataset, model, num_layers):
    assert compose_config(f"dataset={dataset}", f"model={model}").model.num_layers == num_layers


def test_specialization_files_name_existing_pairings():
    pairs = {f"{dataset}_{model}" for dataset in DATASETS for model in MODELS}
    assert set(options("dataset_model")) <= pairs


def test_experiment_switching_dataset_picks_up_its_specialization(compose_config):
    cfg = compose_config("+experiment=aplite", "dataset=cifar10")
    assert (cfg.model.num_layers, cfg.dataset.num_classes) == (5, 10)


def test_eval_config_composes(compose_config, tmp_path):
    cfg = compose_config(f"ckpt_path={tmp_path}/x.ckpt", config_name="eval")
    assert OmegaConf.to_container(cfg, resolve=True)["dataset"]["input_shape"] == [1, 8, 8]


SPECIALIZATIONS = options("dataset_model")


@pytest.mark.parametrize("specialization", SPECIALIZATIONS)
def test_each_specialization_changes_only_its_own_pairing(compose_config, specialization):
    settings = OmegaConf.load(CONFIG_DIR / "dataset_model" / f"{specialization}.yaml")
    changed = {f"{group}.{key}": value for group, node in settings.items() for key, value in node.items()}
    for dataset in DATASETS:
        for model in MODELS:
            cfg = compose_config(f"dataset={dataset}", f"model={model}")
            applies = f"{dataset}_{model}" == specialization
            for key, value in changed.items():
                assert (OmegaConf.select(cfg, key) == value) == applies, (dataset, model, key)
