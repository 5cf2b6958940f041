"""MNIST: 70,000 28x28 handwritten digits in the canonical IDX files, downloaded on first use."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .downloads import fetch
from .in_memory import Batch, InMemoryDataModule

MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
UNSIGNED_BYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped or not) as an array; DataError if it is not whole."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{path} is corrupt or truncated ({error}): delete it to download it again"
        ) from error
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != UNSIGNED_BYTE:
        raise DataError(f"{path} is not an IDX file of unsigned bytes: delete it to download it again")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header]) if len(data) >= header else ()
    if len(dims) != ndim or len(data) != header + math.prod(dims):
        raise DataError(
            f"{path} is corrupt or truncated: {len(data)} bytes where its header promises "
            f"{header + math.prod(dims) if len(dims) == ndim else 'more'}; delete it to download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


class MNISTDataModule(InMemoryDataModule):
    def __init__(self, data_dir: str, mirrors: Sequence[str] = tuple(MIRRORS), **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir, self.mirrors = Path(data_dir), [m if m.endswith("/") else f"{m}/" for m in mirrors]

    def prepare_data(self) -> None:
        """Download what is missing and check every .gz file in place against its MD5.

        Unzipped files are read as they are: no canonical checksum is published for them (only
        for the .gz files), so `read_idx` checks their header and length instead.
        """
        for name, md5 in FILES.items():
            if self._local(name).suffix == ".gz":
                fetch([mirror + name for mirror in self.mirrors], self.data_dir / name, md5)

    def _local(self, name: str) -> Path:
        """The file as downloaded, or already unzipped by the user."""
        gz = self.data_dir / name
        return gz if gz.exists() or not gz.with_suffix("").exists() else gz.with_suffix("")

    def _split(self, prefix: str) -> Batch:
        images = read_idx(self._local(f"{prefix}-images-idx3-ubyte.gz"))
        labels = read_idx(self._local(f"{prefix}-labels-idx1-ubyte.gz"))
        if len(images) != len(labels):
            raise DataError(
                f"MNIST {prefix}: {len(images)} images but {len(labels)} labels in {self.data_dir}"
            )
        return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))

    def load(self) -> dict[str, Batch]:
        self.prepare_data()
        return {"train": self._split("train"), "test": self._split("t10k")}
