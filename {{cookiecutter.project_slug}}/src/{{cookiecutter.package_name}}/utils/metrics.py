"""metrics.json: the final numbers of a run, for scripts and sweep runners to read back."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

METRICS_FILE = "metrics.json"


def scalar_metrics(metrics: Mapping[str, Tensor | float]) -> dict[str, float]:
    """Lightning's callback_metrics as plain floats (NaN and inf become null in JSON)."""
    return {name: float(value) for name, value in sorted(metrics.items())}


def write_metrics(run_dir: Path, metrics: Mapping[str, float]) -> Path:
    path = run_dir / METRICS_FILE
    finite = {name: value if math.isfinite(value) else None for name, value in metrics.items()}
    path.write_text(json.dumps(finite, indent=2) + "\n")
    return path
