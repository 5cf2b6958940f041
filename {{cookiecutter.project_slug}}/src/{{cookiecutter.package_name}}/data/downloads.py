"""Fetch dataset files once into the data dir, verified by checksum.

A download goes to `<name>.part`, is checked against its MD5, and only then takes its real
name: a corrupt or truncated download is deleted and reported, never parsed. With no network
and no copy in place, the error names the URL and the folder to put the file in. A file
already in place (downloaded earlier or put there by hand) is checked against the same MD5 on
every run, once per process: hashing the 163 MB CIFAR-10 archive takes about 0.25 s, less than
reading it, and unlike a stamp file it cannot go stale when the file is replaced.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.request
from functools import cache
from pathlib import Path

from ..errors import DataError

log = logging.getLogger(__name__)


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@cache
def _md5_of_version(path: Path, size: int, mtime_ns: int, inode: int) -> str:
    return md5sum(path)


def check_md5(path: Path, md5: str, source: str) -> None:
    """DataError unless the file in place has the canonical MD5; `source` says where it comes from."""
    stat = path.stat()
    actual = _md5_of_version(path.resolve(), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if actual != md5:
        raise DataError(
            f"{path} is not the canonical file: MD5 {actual}, expected {md5} (truncated, damaged or "
            f"another file). Replace it with {source}, or delete it to download it again"
        )


def fetch(urls: list[str], path: Path, md5: str, timeout: float = 60) -> Path:
    """`path` if it exists with the right checksum, else the first of `urls` that downloads
    with it."""
    if path.exists():
        check_md5(path, md5, urls[0])
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    problems = []
    for url in urls:
        log.info("Downloading %s to %s", url, path)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as error:
            partial.unlink(missing_ok=True)
            problems.append(f"{url}: {getattr(error, 'reason', error)}")
            continue
        if (actual := md5sum(partial)) != md5:
            partial.unlink()
            problems.append(f"{url}: corrupt or truncated download (MD5 {actual}, expected {md5}), deleted")
            continue
        partial.rename(path)
        return path
    tried = "; ".join(problems)
    raise DataError(
        f"cannot get {path.name} ({tried}). Download {urls[0]} yourself and put it in {path.parent}/"
    )
