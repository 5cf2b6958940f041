"""Read an offline W&B run file (`run-<id>.wandb`) back, for tests.

The file is W&B's transaction log: a 7-byte header, then records framed like a LevelDB log
(32 KiB blocks; each chunk has a CRC32, a length and a full/first/middle/last type), each
record a `wandb_internal_pb2.Record` protobuf. wandb ships no public reader for it, so this
frames the bytes and leaves the decoding to W&B's own protobuf definitions.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wandb
from wandb.proto import wandb_internal_pb2

BLOCK_SIZE = 32 * 1024
FILE_HEADER = struct.Struct("<4sHB")
CHUNK_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def payloads(data: bytes) -> list[bytes]:
    magic, _, _ = FILE_HEADER.unpack_from(data)
    assert magic == b":W&B", f"not a W&B run file: {magic!r}"
    position, pending, found = FILE_HEADER.size, b"", []
    while position + CHUNK_HEADER.size <= len(data):
        if BLOCK_SIZE - position % BLOCK_SIZE < CHUNK_HEADER.size:  # block trailer
            position += BLOCK_SIZE - position % BLOCK_SIZE
            continue
        _, length, kind = CHUNK_HEADER.unpack_from(data, position)
        position += CHUNK_HEADER.size
        chunk, position = data[position : position + length], position + length
        if kind == FULL:
            found.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            found.append(pending + chunk)
    return found


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


@dataclass
class WandbRun:
    run_id: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    artifacts: list[str] = field(default_factory=list)


def read_run(path: Path) -> WandbRun:
    run = WandbRun()
    for payload in payloads(path.read_bytes()):
        record = wandb_internal_pb2.Record.FromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            # A later run record may be a partial update: keep what an earlier one set.
            run.run_id = record.run.run_id or run.run_id
            run.tags = list(record.run.tags) or run.tags
            run.notes = record.run.notes or run.notes
        elif kind == "config":
            run.config |= {_key(item): json.loads(item.value_json) for item in record.config.update}
        elif kind == "history":
            run.history.append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            run.summary |= {_key(item): json.loads(item.value_json) for item in record.summary.update}
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
        elif kind == "artifact":
            run.artifacts.append(record.artifact.name)
    return run


def write_out_runs_of_this_process() -> None:
    """Have W&B write the runs this process finished to disk, before a test reads them back.

    W&B's service keeps an offline run's log in memory until it closes the run's stream: during
    a run the file holds only its header. `wandb.finish()` asks for the close without waiting
    for it, so a file read right after `finish()` returns may still be only the header.
    Shutting the service down waits for every stream to close; the next `wandb.init` starts a
    new service. A run that ends with its process needs none of this: wandb shuts its service
    down on exit.
    """
    wandb.teardown()


def read_runs(run_dir: Path) -> list[WandbRun]:
    """Every offline W&B run written under a run dir, oldest first."""
    return [read_run(path) for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))]
