"""Fetch dataset files once into the data dir, verified by checksum.

A download goes to `<name>.part`, is checked against its MD5, and only then takes its real
name: a corrupt or truncated download is deleted and reported, never parsed. With no network
and no copy in place, the error names the URL and the folder to put the file in.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.request
from pathlib import Path

from ..errors import DataError

log = logging.getLogger(__name__)


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(urls: list[str], path: Path, md5: str, timeout: float = 60) -> Path:
    """`path` if it exists, else the first of `urls` that downloads with the right checksum."""
    if path.exists():
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
