"""Each dataset parses its real on-disk format, rejects corrupt files, and downloads safely."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import pickle
import socket
import threading
from pathlib import Path

import pytest
import torch
import yaml
from conftest import DATASETS, PROJECT_DIR, run_script
from fake_data import (
    CIFAR_BATCHES,
    expect_checksums_of,
    idx_bytes,
    write_all,
    write_cifar10,
    write_cifar10_folder,
    write_image_folder,
    write_mnist,
)
from hydra.utils import instantiate

from {{ cookiecutter.package_name }}.data import mnist
from {{ cookiecutter.package_name }}.errors import DataError

# Split sizes of the shipped datasets as fake_data writes them (digits is the real bundled set);
# a dataset not listed here is checked against its config's fractions (`sizes_from_fractions`).
SPLIT_SIZES = {
    "digits": {"train": 1258, "val": 180, "test": 359},
    "mnist": {"train": 52, "val": 8, "test": 20},
    "cifar10": {"train": 90, "val": 10, "test": 20},
    "image_folder": {"train": 20, "val": 2, "test": 2},
}


def datamodule(compose_config, dataset: str, data_dir: Path, *overrides: str):
    cfg = compose_config(f"dataset={dataset}", f"paths.data_dir={data_dir}", *overrides)
    module = instantiate(cfg.dataset)
    module.setup("fit")
    return cfg, module


def sizes_from_fractions(dataset_cfg, sizes: dict[str, int]) -> dict[str, int]:
    """The split `split_indices` makes of all the images: val and a held-out test take their
    fractions of them; with test_fraction 0 the test set is the dataset's own."""
    total = sum(sizes.values())
    test = round(total * dataset_cfg.test_fraction) if dataset_cfg.test_fraction else sizes["test"]
    val = round(total * dataset_cfg.val_fraction)
    return {"train": total - val - test, "val": val, "test": test}


def test_split_size_cases_name_existing_datasets():
    assert set(SPLIT_SIZES) <= set(DATASETS), "remove the cases of deleted datasets from SPLIT_SIZES"


@pytest.mark.parametrize("dataset", DATASETS)
def test_dataset_reads_its_format_and_serves_normalised_batches(compose_config, data_dir, dataset):
    cfg, module = datamodule(compose_config, dataset, data_dir)
    sizes = {
        name: len(loader.dataset if hasattr(loader, "dataset") else loader.targets)
        for name, loader in (
            ("train", module.train_dataloader()),
            ("val", module.val_dataloader()),
            ("test", module.test_dataloader()),
        )
    }
    assert sizes == (SPLIT_SIZES.get(dataset) or sizes_from_fractions(cfg.dataset, sizes))
    assert min(sizes.values()) > 0
    inputs, targets = next(iter(module.val_dataloader()))
    inputs, targets = module.on_after_batch_transfer((inputs, targets), 0)
    assert tuple(inputs.shape[1:]) == tuple(cfg.dataset.input_shape)
    assert inputs.dtype == torch.float32 and targets.dtype == torch.int64
    assert int(targets.min()) >= 0 and int(targets.max()) < cfg.dataset.num_classes


def test_stats_command_prints_the_mean_and_std_of_the_training_split(compose_config, tmp_path):
    result = run_script("-m", "{{ cookiecutter.package_name }}.data.stats", "dataset=digits", cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)  # the two lines to paste into configs/dataset/digits.yaml
    images = datamodule(compose_config, "digits", tmp_path)[1].splits["train"][0]
    assert printed["mean"] == pytest.approx([float(images.mean())], abs=1e-4)
    assert printed["std"] == pytest.approx([float(images.std(correction=0))], abs=1e-4)


def test_random_crop_and_flip_keep_shapes_and_pixels(compose_config, data_dir):
    _, module = datamodule(compose_config, "cifar10", data_dir)
    inputs = module.splits["train"][0][:8]
    plain, augmented = module.eval_transform(inputs), module.train_transform(inputs)
    assert augmented.shape == plain.shape and not torch.equal(augmented, plain)


def corrupt(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def unzipped(data_dir: Path, name: str, content: bytes) -> None:
    """Replace MNIST's `name` (.gz) with an unzipped file holding `content`."""
    (data_dir / "mnist" / name).unlink()
    (data_dir / "mnist" / name.removesuffix(".gz")).write_bytes(content)


# Decode images in the test process, so the error is raised there.
IN_PROCESS = {"image_folder": ("dataset.num_workers=0",)}
# Damage done after the checksums were taken: a .gz or archive fails its MD5; unzipped files,
# which have no published checksum, fail the format checks.
CORRUPTIONS = {
    "mnist-truncated-gzip": (
        "mnist",
        lambda d: corrupt(d / "mnist" / "train-images-idx3-ubyte.gz"),
        "is not the canonical file: MD5",
    ),
    "mnist-unzipped-truncated-idx": (
        "mnist",
        lambda d: unzipped(
            d, "t10k-labels-idx1-ubyte.gz", idx_bytes(torch.zeros(20, dtype=torch.uint8).numpy())[:-5]
        ),
        "header promises",
    ),
    "mnist-unzipped-not-idx": (
        "mnist",
        lambda d: unzipped(d, "t10k-labels-idx1-ubyte.gz", b"<html>not found</html>"),
        "not an IDX file",
    ),
    "cifar10-truncated-archive": (
        "cifar10",
        lambda d: corrupt(d / "cifar10" / "cifar-10-python.tar.gz"),
        "is not the canonical file: MD5",
    ),
    "image-folder-bad-image": (
        "image_folder",
        lambda d: (d / "images" / "class_0" / "5.png").write_bytes(b"junk"),
        "cannot read image",
    ),
}


@pytest.mark.parametrize(("dataset", "damage", "message"), CORRUPTIONS.values(), ids=CORRUPTIONS)
def test_corrupt_file_is_reported_not_trained_on(
    compose_config, tmp_path, monkeypatch, dataset, damage, message
):
    expect_checksums_of(write_all(tmp_path), monkeypatch)
    damage(tmp_path)
    with pytest.raises(DataError, match=message):
        _, module = datamodule(compose_config, dataset, tmp_path, *IN_PROCESS.get(dataset, ()))
        for batch in module.train_dataloader():
            assert batch


def test_cifar10_batch_with_foreign_code_is_refused(compose_config, tmp_path, monkeypatch):
    folder = write_cifar10_folder(tmp_path / "cifar10")
    for name in CIFAR_BATCHES:
        (folder / name).write_bytes(pickle.dumps({b"data": Path("x"), b"labels": []}))
    expect_checksums_of(tmp_path, monkeypatch)
    with pytest.raises(DataError, match="must not contain pathlib"):
        datamodule(compose_config, "cifar10", tmp_path)


@pytest.mark.parametrize(
    ("classes", "message"),
    [(3, "has 3 class folders"), (0, "does not exist")],
    ids=["wrong-count", "missing"],
)
def test_image_folder_layout_problems_are_clear(compose_config, tmp_path, classes, message):
    if classes:
        write_image_folder(tmp_path / "images", classes=classes, per_class=2)
    with pytest.raises(DataError, match=message):
        datamodule(compose_config, "image_folder", tmp_path)


@pytest.fixture
def file_server(tmp_path):
    """An HTTP server on loopback serving tmp_path/served; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_is_checksummed_then_parsed(compose_config, tmp_path, file_server, monkeypatch):
    served, url = file_server
    files = write_mnist(served)
    monkeypatch.setattr(
        mnist, "FILES", {name: hashlib.md5(p.read_bytes()).hexdigest() for name, p in files.items()}
    )
    data = tmp_path / "data"
    _, module = datamodule(compose_config, "mnist", data, f"dataset.mirrors=[{url}]")
    assert sorted(p.name for p in (data / "mnist").iterdir()) == sorted(files)
    assert len(module.splits["test"][1]) == 20


def test_corrupt_download_is_deleted_and_reported(compose_config, tmp_path, file_server, monkeypatch):
    served, url = file_server
    files = write_mnist(served)
    monkeypatch.setattr(
        mnist, "FILES", {name: hashlib.md5(p.read_bytes()).hexdigest() for name, p in files.items()}
    )
    corrupt(files["train-images-idx3-ubyte.gz"])
    data = tmp_path / "data"
    with pytest.raises(DataError, match=r"corrupt or truncated download .* deleted"):
        datamodule(compose_config, "mnist", data, f"dataset.mirrors=[{url}]")
    assert not list((data / "mnist").glob("train-images-idx3-ubyte.gz*"))


def data_error_line(data_dir: Path, *overrides: str) -> str:
    """`train.py` on the data in `data_dir` (run dir `data_dir/run`): must fail with exit
    status 2 and exactly one stderr line, which is returned."""
    result = run_script(
        "train.py", f"paths.data_dir={data_dir}", *overrides, f"hydra.run.dir={data_dir}/run", cwd=PROJECT_DIR
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    return line


def test_offline_without_a_copy_names_the_url_and_the_folder(tmp_path):
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    line = data_error_line(tmp_path, "dataset=mnist", f"dataset.mirrors=[{dead}]")
    assert line.startswith("error: cannot get train-images-idx3-ubyte.gz")
    assert f"Download {dead}train-images-idx3-ubyte.gz yourself and put it in {tmp_path}/mnist/" in line


# name -> (dataset, how the user puts its files in place, the file the error names)
HAND_PLACED = {
    "mnist-gzip": ("mnist", lambda d: write_mnist(d / "mnist"), "mnist/train-images-idx3-ubyte.gz"),
    "cifar10-archive": ("cifar10", lambda d: write_cifar10(d / "cifar10"), "cifar10/cifar-10-python.tar.gz"),
    "cifar10-extracted-folder": (
        "cifar10",
        lambda d: write_cifar10_folder(d / "cifar10"),
        "cifar10/cifar-10-batches-py/data_batch_1",
    ),
}


@pytest.mark.parametrize(("dataset", "place", "culprit"), HAND_PLACED.values(), ids=HAND_PLACED)
def test_hand_placed_file_with_other_content_is_one_line_before_training(tmp_path, dataset, place, culprit):
    place(tmp_path)  # random content: never the canonical MD5
    line = data_error_line(tmp_path, f"dataset={dataset}")
    assert line.startswith(f"error: {tmp_path / culprit} is not the canonical file: MD5 "), line
    assert ", expected " in line and "Replace it with " in line
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(("dataset", "place", "culprit"), HAND_PLACED.values(), ids=HAND_PLACED)
def test_hand_placed_file_with_the_expected_checksum_is_used(
    compose_config, tmp_path, monkeypatch, dataset, place, culprit
):
    place(tmp_path)
    expect_checksums_of(tmp_path, monkeypatch)
    _, module = datamodule(compose_config, dataset, tmp_path)
    assert len(module.splits["test"][1]) == 20


def test_unzipped_mnist_is_read_without_a_checksum(compose_config, tmp_path):
    # No checksum is published for the unzipped files; read_idx checks their format instead.
    for name, path in write_mnist(tmp_path / "mnist").items():
        unzipped(tmp_path, name, gzip.decompress(path.read_bytes()))
    _, module = datamodule(compose_config, "mnist", tmp_path)
    assert len(module.splits["test"][1]) == 20
