"""Build the Lightning callbacks listed under `cfg.callbacks`."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning import Callback


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    return [instantiate(callback_cfg) for callback_cfg in (cfg.get("callbacks") or {}).values()]
