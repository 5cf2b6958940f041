"""Every option of every group composes, and specializations apply to exactly their pairing.

Datasets, models, experiments and specializations are found in configs/: a new file there is
tested without any change here."""

from __future__ import annotations

import pytest
from conftest import CONFIG_DIR, DATASETS, EXPERIMENTS, MODELS, options
from omegaconf import OmegaConf

from {{ cookiecutter.package_name }}.config_checks import check_config

SPECIALIZATIONS = options("dataset_model")
PAIRINGS = [f"{dataset}_{model}" for dataset in DATASETS for model in MODELS]


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
    assert text.startswith("# @package _global_"), f"configs/experiment/{experiment}.yaml: first line?"
    # Named explicitly, so the experiment means the same whatever the defaults become.
    assert "override /dataset:" in text and "override /model:" in text, (
        f"configs/experiment/{experiment}.yaml: add `- override /dataset: ...` and "
        "`- override /model: ...` to its defaults list"
    )


@pytest.mark.parametrize(
    ("dataset", "model", "num_layers"),
    [("cifar10", "alexnet", 5), ("digits", "alexnet", 7)],
    ids=["cifar10_alexnet-specialized", "digits_alexnet-default"],
)
def test_alexnet_depth_is_specialized_for_cifar10_only(compose_config, dataset, model, num_layers):
    assert compose_config(f"dataset={dataset}", f"model={model}").model.num_layers == num_layers


def test_specialization_files_name_existing_pairings():
    unknown = set(options("dataset_model")) - set(PAIRINGS)
    assert not unknown, f"configs/dataset_model/<dataset>_<model>.yaml names no dataset and model: {unknown}"


def test_experiment_switching_dataset_picks_up_its_specialization(compose_config):
    cfg = compose_config("+experiment=aplite", "dataset=cifar10")
    assert (cfg.model.num_layers, cfg.dataset.num_classes) == (5, 10)


def test_eval_config_composes(compose_config, tmp_path):
    cfg = compose_config(f"ckpt_path={tmp_path}/x.ckpt", config_name="eval")
    assert OmegaConf.to_container(cfg, resolve=True)["dataset"]["input_shape"] == [1, 8, 8]


def composed(compose_config, pairing: str, *overrides: str) -> dict:
    """The unresolved config of one dataset_model pairing (run dirs differ; values do not)."""
    dataset, model = next((d, m) for d in DATASETS for m in MODELS if f"{d}_{m}" == pairing)
    cfg = compose_config(f"dataset={dataset}", f"model={model}", *overrides)
    return OmegaConf.to_container(cfg, resolve=False)


@pytest.mark.parametrize("specialization", SPECIALIZATIONS)
def test_specialization_applies_its_values_to_its_pairing(compose_config, specialization):
    settings = OmegaConf.load(CONFIG_DIR / "dataset_model" / f"{specialization}.yaml")
    without = OmegaConf.create(composed(compose_config, specialization, "~dataset_model"))
    expected = OmegaConf.to_container(OmegaConf.merge(without, settings), resolve=False)
    assert composed(compose_config, specialization) == expected


@pytest.mark.parametrize("pairing", sorted(set(PAIRINGS) - set(SPECIALIZATIONS)))
def test_pairing_without_a_specialization_composes_as_if_there_were_none(compose_config, pairing):
    # No other pairing's file applies here: the config equals the one without the optional group.
    assert composed(compose_config, pairing) == composed(compose_config, pairing, "~dataset_model")
