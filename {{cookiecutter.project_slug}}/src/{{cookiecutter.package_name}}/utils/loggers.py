"""Build the experiment loggers from `cfg.logger`: the one place that knows about W&B.

`logger=wandb` (the default) gets the resolved config as plain containers, never a DictConfig.
With no W&B login and no WANDB_MODE set, runs fall back to offline mode (files in the run dir,
`wandb sync` uploads them later) instead of prompting or failing. `logger=csv` and `~logger`
never import wandb.
"""

from __future__ import annotations

import logging
import netrc
import os
import sys
from typing import Any
from urllib.parse import urlparse

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger

log = logging.getLogger(__name__)


def wandb_logged_in() -> bool:
    """True when W&B could authenticate: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def use_offline_wandb_without_login(save_dir: str) -> None:
    if os.environ.get("WANDB_MODE") or wandb_logged_in():
        return
    os.environ["WANDB_MODE"] = "offline"
    log.warning(
        "W&B: no login found, logging offline to %s/wandb; "
        "upload later with `wandb sync %s/wandb/offline-run-*`",
        save_dir,
        save_dir,
    )


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain dicts and lists: what loggers and W&B should receive."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """Instantiate every logger under `cfg.logger` and give each the resolved run config."""
    logger_cfgs = cfg.get("logger") or {}
    if "wandb" in logger_cfgs:
        use_offline_wandb_without_login(logger_cfgs.wandb.save_dir)
    loggers: list[Logger] = [instantiate(logger_cfg) for logger_cfg in logger_cfgs.values()]
    config = plain_config(cfg)
    for logger in loggers:
        logger.log_hyperparams(config)
    return loggers


def finish_wandb(failed: bool) -> None:
    """End the W&B run of this job so the next job of a multirun starts its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)
