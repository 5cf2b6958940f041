"""CIFAR-10: 60,000 32x32 colour images, from the canonical python-version archive.

The archive is downloaded on first use (checksum verified) and read in place; an already
extracted `cifar-10-batches-py/` folder works too. The batches are pickles, so they are read
with an unpickler that only rebuilds plain containers and numpy arrays.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from ..errors import DataError
from .downloads import check_md5, fetch
from .in_memory import Batch, InMemoryDataModule

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE, MD5 = "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{number}" for number in range(1, 6)]
TEST_BATCH = "test_batch"
# The batches as the archive holds them (the MD5s torchvision checks in an extracted folder).
BATCH_MD5S = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
# What a CIFAR-10 batch pickle may rebuild: numpy arrays (numpy 1 and 2 module names), and
# bytes as Python 3 writes them at protocol 2 (via _codecs.encode).
ALLOWED_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise DataError(f"a CIFAR-10 batch must not contain {module}.{name}: not the canonical file")
        return super().find_class(module, name)


def read_batch(file: IO[bytes], source: str) -> Batch:
    """One pickled batch: {b"data": (N, 3072) uint8, b"labels": [N ints]} -> (N, 3, 32, 32), (N,)."""
    try:
        batch = BatchUnpickler(file, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, zlib.error, OSError) as error:
        raise DataError(
            f"{source} is corrupt or truncated ({error!r}): delete it to download it again"
        ) from error
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"{source} is not a CIFAR-10 batch: data {data.shape}, {len(labels)} labels")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


def concat(batches: list[Batch]) -> Batch:
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


class CIFAR10DataModule(InMemoryDataModule):
    def __init__(self, data_dir: str, url: str = URL, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir, self.url = Path(data_dir), url

    def prepare_data(self) -> None:
        """Check an extracted folder batch by batch, else check or download the archive."""
        folder = self.data_dir / FOLDER
        if not folder.is_dir():
            fetch([self.url], self.data_dir / ARCHIVE, MD5)
            return
        for name, md5 in BATCH_MD5S.items():
            if not (folder / name).is_file():
                raise DataError(f"{folder} has no {name}: extract all of {self.url} here, or delete it")
            check_md5(folder / name, md5, f"the {name} in {self.url}")

    def _read_all(self, open_batch: Callable[[str], IO[bytes]], source: str) -> dict[str, Batch]:
        def read(name: str) -> Batch:
            with open_batch(name) as file:
                return read_batch(file, f"{source}:{name}")

        return {"train": concat([read(name) for name in TRAIN_BATCHES]), "test": read(TEST_BATCH)}

    def load(self) -> dict[str, Batch]:
        self.prepare_data()
        folder = self.data_dir / FOLDER
        if folder.is_dir():
            return self._read_all(lambda name: open(folder / name, "rb"), str(folder))
        archive = self.data_dir / ARCHIVE
        try:
            with tarfile.open(archive, "r:gz") as tar:

                def member(name: str) -> IO[bytes]:
                    return io.BytesIO(tar.extractfile(f"{FOLDER}/{name}").read())  # type: ignore[union-attr]

                return self._read_all(member, str(archive))
        except (tarfile.TarError, EOFError, zlib.error, KeyError, OSError) as error:
            raise DataError(
                f"{archive} is corrupt or truncated ({error!r}): delete it to download it again"
            ) from error
