"""Where configs and run outputs live: the one place that answers those questions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

_PACKAGE_DIR = Path(__file__).resolve().parent
# A run's final numbers, in its run dir (utils.metrics writes it; sweep and search runners,
# which never import torch, read it back).
METRICS_FILE = "metrics.json"


def config_dir() -> str:
    """The configs inside an installed wheel, else the `configs/` folder of the checkout."""
    packaged = _PACKAGE_DIR / "configs"
    return str(packaged if packaged.is_dir() else _PACKAGE_DIR.parents[1] / "configs")


def composed_config(
    overrides: Sequence[str] = (), config_name: str = "config", return_hydra_config: bool = False
) -> DictConfig:
    """The config `python train.py <overrides>` composes (eval.py's with `config_name="eval"`),
    outside a run: for help, listings, searches and benchmarks."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


def run_dir() -> Path:
    """The output dir of the running Hydra job (where logs, checkpoints and metrics.json go)."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def code_dir() -> Path:
    """The package's own source dir: the git repo holding it (if any) is the code a run ran."""
    return _PACKAGE_DIR
