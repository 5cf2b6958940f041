"""A callback that writes when a run reaches each phase before its first training step.

benchmarks/first_step.py adds it to a run with
`+callbacks.first_step._target_=first_step_probe.FirstStep +callbacks.first_step.path=<file>` and this dir on
PYTHONPATH; the run itself is unchanged. The file is JSON: phase name to `time.time()`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback


class FirstStep(Callback):
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.times = {"callbacks built": time.time()}

    def mark(self, phase: str) -> None:
        if phase not in self.times:
            self.times[phase] = time.time()
            self.path.write_text(json.dumps(self.times))

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.mark("fit started")

    def on_sanity_check_start(self, trainer: Any, pl_module: Any) -> None:
        self.mark("sanity check started")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.mark("training started")

    def on_train_batch_end(self, *args: Any) -> None:
        self.mark("first step done")
