"""Small datasets in the real on-disk formats, for tests that must not download anything."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.data import cifar10, mnist
from {{ cookiecutter.package_name }}.data.downloads import md5sum

RNG = np.random.default_rng(0)
CIFAR_BATCHES = [*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH]


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic (0, 0, 0x08, ndim), big-endian dims, data."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(folder: Path, train: int = 60, test: int = 20) -> dict[str, Path]:
    """The four canonical gzipped IDX files with random images; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for prefix, count in (("train", train), ("t10k", test)):
        arrays = {
            "images-idx3": RNG.integers(0, 256, (count, 28, 28), dtype=np.uint8),
            "labels-idx1": (np.arange(count) % 10).astype(np.uint8),
        }
        for kind, array in arrays.items():
            name = f"{prefix}-{kind}-ubyte.gz"
            paths[name] = folder / name
            paths[name].write_bytes(gzip.compress(idx_bytes(array)))
    return paths


def cifar_batch(count: int) -> bytes:
    """A pickled CIFAR-10 batch as the canonical files hold it (bytes keys, uint8 rows)."""
    batch = {
        b"batch_label": b"fake batch",
        b"labels": [int(i % 10) for i in range(count)],
        b"data": RNG.integers(0, 256, (count, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(count)],
    }
    return pickle.dumps(batch, protocol=2)


def write_cifar10(folder: Path, per_batch: int = 20) -> Path:
    """cifar-10-python.tar.gz with five training batches and a test batch."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in CIFAR_BATCHES:
            data = cifar_batch(per_batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def write_image_folder(
    root: Path, classes: int = 2, per_class: int = 12, size: tuple[int, int] = (20, 14)
) -> Path:
    """root/<class>/<n>.png (and one .jpg per class) with random colour images."""
    from PIL import Image

    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = RNG.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            suffix = ".jpg" if index == 0 else ".png"
            Image.fromarray(pixels).save(folder / f"{index}{suffix}")
    return root


def expect_checksums_of(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make MNIST and CIFAR-10 expect the MD5s of the fake files under `data_dir`, as they are
    now, in place of the canonical ones (which random data never matches); returns data_dir."""

    def sums(folder: Path, expected: dict[str, str]) -> dict[str, str]:
        return {
            name: md5sum(folder / name) if (folder / name).is_file() else md5
            for name, md5 in expected.items()
        }

    monkeypatch.setattr(mnist, "FILES", sums(data_dir / "mnist", mnist.FILES))
    monkeypatch.setattr(
        cifar10, "BATCH_MD5S", sums(data_dir / "cifar10" / cifar10.FOLDER, cifar10.BATCH_MD5S)
    )
    if (archive := data_dir / "cifar10" / cifar10.ARCHIVE).is_file():
        monkeypatch.setattr(cifar10, "MD5", md5sum(archive))
    return data_dir


def write_cifar10_folder(folder: Path, per_batch: int = 20) -> Path:
    """The extracted cifar-10-batches-py/ folder, as a user who unpacked the archive has it."""
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True, exist_ok=True)
    for name in CIFAR_BATCHES:
        (batches / name).write_bytes(cifar_batch(per_batch))
    return batches


def write_all(data_dir: Path) -> Path:
    """Every downloadable dataset under `data_dir` as the configs expect it, plus `images/`."""
    write_mnist(data_dir / "mnist")
    write_cifar10(data_dir / "cifar10")
    write_image_folder(data_dir / "images")
    return data_dir
