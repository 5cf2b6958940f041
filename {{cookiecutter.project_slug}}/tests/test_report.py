"""The run's figures are readable: the confusion matrix names its classes from 2 to 100 of them,
the learning curves label their axes, mark the best epoch and show the learning rate."""

from __future__ import annotations

import numpy as np
import pytest
from fake_data import write_image_folder
from PIL import Image

from {{ cookiecutter.package_name }}.training import run_training
from {{ cookiecutter.package_name }}.utils import report

# name: (class count, how many counts are written in the cells)
CLASS_COUNTS = {"2-classes": (2, 4), "10-classes": (10, 100), "100-classes": (100, 0)}
# The image as saved (dpi 120): never a thumbnail, never a poster.
MIN_PIXELS, MAX_PIXELS = 400, 2400


@pytest.fixture(autouse=True)
def close_figures():
    yield
    report.pyplot().close("all")


def tick_texts(labels) -> list[str]:
    return [label.get_text() for label in labels]


@pytest.mark.parametrize(("classes", "counts_written"), CLASS_COUNTS.values(), ids=CLASS_COUNTS)
def test_confusion_matrix_names_every_class_and_stays_readable(tmp_path, classes, counts_written):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 5, (classes, classes)) + np.diag(rng.integers(20, 900, classes))
    names = [f"class name {label}" for label in range(classes)]

    figure = report.confusion_matrix(matrix, names)
    axis = figure.axes[0]
    figure.savefig(tmp_path / "matrix.png", dpi=120, bbox_inches="tight")

    assert tick_texts(axis.get_xticklabels()) == names
    assert tick_texts(axis.get_yticklabels()) == names
    assert all(label.get_fontsize() >= 6 for label in axis.get_xticklabels())
    assert axis.get_xticklabels()[0].get_rotation() in (45, 90)  # long names do not overlap
    written = [text.get_text() for text in axis.texts]
    assert len(written) == counts_written
    if written:  # the counts themselves, not the shares the colours show
        assert written[0] == str(matrix[0, 0])
    assert axis.images[0].get_clim() == (0.0, 1.0)  # colours are shares of the true class
    width, height = Image.open(tmp_path / "matrix.png").size
    assert MIN_PIXELS <= width <= MAX_PIXELS and MIN_PIXELS <= height <= MAX_PIXELS


def test_confusion_matrix_without_matching_names_numbers_the_classes():
    figure = report.confusion_matrix(np.eye(3, dtype=int), ["only", "two"])
    assert tick_texts(figure.axes[0].get_xticklabels()) == ["0", "1", "2"]


# Four epochs by column: val/acc is best at epoch 1, val/loss at epoch 3.
COLUMNS = {
    "train/loss_epoch": [1.2, 0.7, 0.4, 0.3],
    "val/loss": [0.9, 0.5, 0.6, 0.4],
    "train/acc_epoch": [0.6, 0.8, 0.9, 0.9],
    "val/acc": [0.70, 0.90, 0.85, 0.80],
    "train/lr": [1e-3, 5e-4, 1e-4, 0.0],
}
HISTORY = [{"epoch": epoch} | {name: values[epoch] for name, values in COLUMNS.items()} for epoch in range(4)]
# name: (monitor, mode, the best epoch)
MONITORS = {"val-acc-max": ("val/acc", "max", 1), "val-loss-min": ("val/loss", "min", 3)}


def best_epoch_marks(figure) -> list[float]:
    return [
        line.get_xdata()[0]
        for axis in figure.axes
        for line in axis.get_lines()
        if line.get_label().startswith(report.BEST_EPOCH_LABEL)
    ]


@pytest.mark.parametrize(("monitor", "mode", "best"), MONITORS.values(), ids=MONITORS)
def test_learning_curves_label_axes_mark_the_best_epoch_and_show_the_learning_rate(monitor, mode, best):
    figure = report.learning_curves(HISTORY, monitor, mode)

    assert [axis.get_xlabel() for axis in figure.axes] == ["epoch"] * 3
    assert [axis.get_ylabel() for axis in figure.axes] == ["loss", "accuracy", "learning rate"]
    assert best_epoch_marks(figure) == [best] * 3
    (lr_line,) = [line for line in figure.axes[2].get_lines() if line.get_label() == "train/lr"]
    assert list(lr_line.get_ydata()) == COLUMNS["train/lr"]


def test_learning_curves_without_the_monitored_metric_mark_nothing():
    assert best_epoch_marks(report.learning_curves(HISTORY, "val/f1", "max")) == []


def test_training_draws_folder_names_and_the_configured_best_epoch(compose_config, tmp_path, monkeypatch):
    drawn: dict[str, tuple] = {}
    for name in ("confusion_matrix", "learning_curves"):
        draw = getattr(report, name)
        monkeypatch.setattr(
            report, name, lambda *args, draw=draw, name=name: drawn.setdefault(name, args) and draw(*args)
        )
    write_image_folder(tmp_path / "images", classes=3, per_class=6)
    cfg = compose_config(
        "dataset=image_folder",
        "dataset.num_classes=3",
        "dataset.num_workers=0",
        "dataset.input_shape=[3,8,8]",
        "model=mlp",
        f"paths.data_dir={tmp_path}",
        "trainer.max_epochs=2",
        "monitor.metric=val/loss",
        "monitor.mode=min",
        "~logger",
    )
    run_training(cfg)

    assert drawn["confusion_matrix"][1] == ["class_0", "class_1", "class_2"]
    history, monitor, mode = drawn["learning_curves"]
    assert (monitor, mode) == ("val/loss", "min")
    assert [row["epoch"] for row in history] == [0, 1] and all("train/lr" in row for row in history)
