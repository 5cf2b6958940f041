"""What every benchmark here shares: interleaved repeats, medians, ratios, the machine line.

Absolute times drift with whatever else the machine runs; ratios against a baseline measured in
the same session, with the repeats of every case interleaved, drift much less. So each table
has a baseline row and a ratio column, and ends with the machine it was measured on.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


def benchmark_parser(description: str | None, repeats: int) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring as `--help`, and `--repeats` of each case."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=repeats)
    return parser


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine() -> str:
    """One line: date, CPU, cores, load, Python, torch and Lightning versions."""
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"{datetime.date.today()}, {cpu_model()}, {cores()} cores{load}; Python {platform.python_version()}, "
        f"torch {package_version('torch')}, Lightning {package_version('pytorch-lightning')}"
    )


def interleaved(cases: Mapping[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Call every case once per round, `repeats` rounds, so drift hits every case alike; each case
    returns the number it measured (seconds, samples/s, ...)."""
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            results[name].append(case())
    return results


def command_seconds(
    args: Sequence[str], env: Mapping[str, str] | None = None, expected_status: int = 0
) -> float:
    """Wall time of `python <args>` run from the project dir as a user would; exits with the
    command's output if it does not end with `expected_status`."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *args], cwd=PROJECT_DIR, capture_output=True, env={**os.environ, **(env or {})}
    )
    seconds = time.perf_counter() - started
    if result.returncode != expected_status:
        sys.exit(f"`python {' '.join(args)}` exited with {result.returncode}:\n{result.stderr.decode()}")
    return seconds


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def time_table(
    times: Mapping[str, Sequence[float]],
    baseline: str,
    ratio_header: str,
    label: Callable[[str], str] = str,
    decimals: int = 3,
) -> str:
    """A table of median seconds per case and its ratio to the `baseline` case's median."""
    floor = median(times[baseline])
    rows = [
        (label(name), f"{median(seconds):.{decimals}f} s", f"{median(seconds) / floor:.2f}x")
        for name, seconds in times.items()
    ]
    return markdown_table(["command", "median time", ratio_header], rows)


def footer(repeats: int, what: str = "runs") -> str:
    return f"Medians of {repeats} {what} each, interleaved. {machine()}."
