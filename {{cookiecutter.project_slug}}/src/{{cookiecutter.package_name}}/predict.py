"""Classify images with a trained run.

    python -m {{ cookiecutter.package_name }}.predict logs/runs/<date>/<time> cat.jpg dog.png

The argument is a run dir (its checkpoints/best.ckpt is used) or a .ckpt inside one. Images
are resized to the dataset's input shape and normalised as in training. One JSON line per
image: {"input", "class", "index", "probability"}. In a notebook:

    from {{ cookiecutter.package_name }}.predict import load_run
    model, cfg = load_run("logs/runs/<date>/<time>")
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from .checkpoints import load_classifier
from .data.base import BatchTransform
from .data.image_folder import load_image
from .errors import UsageError
from .models.classifier import Classifier


def load_run(path: str | Path) -> tuple[Classifier, DictConfig]:
    """The trained model (in eval mode, on CPU) and the config of a run dir or checkpoint."""
    path = Path(path)
    checkpoint = path if path.is_file() else path / "checkpoints" / "best.ckpt"
    run_dir = checkpoint.parent.parent
    config = run_dir / ".hydra" / "config.yaml"
    if not checkpoint.is_file() or not config.is_file():
        raise UsageError(f"{path} is not a run dir or a checkpoint in one: need {checkpoint} and {config}")
    model = load_classifier(checkpoint).eval()
    return model, cast(DictConfig, OmegaConf.load(config))


@torch.no_grad()
def classify(model: Classifier, cfg: DictConfig, images: list[Path]) -> list[dict[str, Any]]:
    shape = list(cfg.dataset.input_shape)
    batch = BatchTransform(cfg.dataset.mean, cfg.dataset.std)(
        torch.stack([load_image(p, shape) for p in images])
    )
    probabilities = model(batch).softmax(dim=-1)
    names = model.class_names or [str(label) for label in range(probabilities.shape[1])]
    best, index = probabilities.max(dim=-1)
    return [
        {"input": str(path), "class": names[i], "index": int(i), "probability": round(float(p), 6)}
        for path, i, p in zip(images, index.tolist(), best.tolist(), strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", type=Path, help="a run dir, or a .ckpt file inside one")
    parser.add_argument("images", type=Path, nargs="+", help="image files (any format Pillow reads)")
    args = parser.parse_args(argv)
    try:
        model, cfg = load_run(args.run)
        for prediction in classify(model, cfg, args.images):
            print(json.dumps(prediction))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
