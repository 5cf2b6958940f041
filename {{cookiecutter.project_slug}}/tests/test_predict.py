"""A trained run classifies image files, from the command line or from a notebook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from conftest import PROJECT_DIR, run_script, train_cli
from fake_data import write_image_folder
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from {{ cookiecutter.package_name }}.predict import load_run
from {{ cookiecutter.package_name }}.training import run_training

PREDICT = "{{ cookiecutter.package_name }}.predict"


def predict(*args: str) -> tuple[int, list[dict], str]:
    result = run_script("-m", PREDICT, *args, cwd=PROJECT_DIR)
    lines = [json.loads(line) for line in result.stdout.splitlines()] if result.returncode == 0 else []
    return result.returncode, lines, result.stderr


def test_digits_run_predicts_png_files_like_the_tensors_it_was_tested_on(compose_config, tmp_path):
    cfg = compose_config("trainer.max_epochs=3", "~logger")
    run_training(cfg)
    run_dir = Path(cfg.paths.output_dir)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")

    model, run_cfg = load_run(run_dir)  # the two notebook lines
    datamodule = instantiate(run_cfg.dataset)
    datamodule.setup("test")
    images = datamodule.splits["test"][0][:8]
    paths = [tmp_path / f"digit_{index}.png" for index in range(len(images))]
    for path, image in zip(paths, images, strict=True):
        Image.fromarray(np.rint(image[0].numpy() * 255).astype(np.uint8)).save(path)
    with torch.no_grad():
        expected = model(datamodule.eval_transform(images)).argmax(-1).tolist()

    status, predictions, stderr = predict(str(run_dir), *map(str, paths))
    assert status == 0, stderr[-3000:]
    assert [p["index"] for p in predictions] == expected
    assert all(p["class"] == str(p["index"]) and 0 < p["probability"] <= 1 for p in predictions)


def test_image_folder_run_predicts_class_folder_names(tmp_path):
    write_image_folder(tmp_path / "images", classes=2, per_class=10)
    run = train_cli(
        tmp_path / "run",
        "dataset=image_folder",
        "model=resnet",
        "model.depth=8",
        f"paths.data_dir={tmp_path}",
        "trainer.max_epochs=1",
        "logger=csv",
        "dataset.num_workers=0",
    )
    image = tmp_path / "images" / "class_1" / "3.png"
    status, (prediction,), stderr = predict(str(run / "checkpoints" / "best.ckpt"), str(image))
    assert status == 0, stderr[-3000:]
    assert prediction["class"] in {"class_0", "class_1"} and prediction["input"] == str(image)

    status, _, stderr = predict(str(run), str(tmp_path / "missing.png"))
    assert status == 2 and stderr.strip().startswith(f"error: cannot read image {tmp_path / 'missing.png'}")


def test_predict_without_a_run_is_one_clear_error(tmp_path):
    status, _, stderr = predict(str(tmp_path / "nope"), str(tmp_path / "x.png"))
    assert status == 2
    (line,) = stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'nope'} is not a run dir or a checkpoint in one")
