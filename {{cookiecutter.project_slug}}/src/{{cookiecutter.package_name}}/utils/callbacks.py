"""Build the Lightning callbacks listed under `cfg.callbacks`."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning import Callback


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    """One callback per entry; `callbacks.<name>=null` leaves that one out."""
    callback_cfgs = (cfg.get("callbacks") or {}).values()
    return [instantiate(callback_cfg) for callback_cfg in callback_cfgs if callback_cfg is not None]
