"""The auto thread count: a job's share of the cores, capped by the cores the machine leaves idle."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from {{ cookiecutter.package_name }}.utils import threads
from {{ cookiecutter.package_name }}.utils.threads import auto_threads, idle_cores, thread_share

AUTO_SOURCE = (
    r"auto: (\d+) cores / \((\d+) parallel jobs x (\d+) processes each\)(?:, ([\d.]+) of them idle)?"
)
# name: (cores, processes training at once, idle cores measured, threads)
AUTO_CASES = {
    "idle-machine-lone-run-takes-every-core": (8, 1, 7.9, 8),
    "two-trainings-on-2-cores-leave-a-lone-run-1": (2, 1, 0.1, 1),
    "half-busy-machine-caps-the-share": (8, 1, 3.6, 4),
    "parallel-jobs-take-their-share-of-an-idle-machine": (8, 4, 8.0, 2),
    "unknown-idle-leaves-the-share-alone": (8, 1, None, 8),
    "more-processes-than-cores-still-1": (2, 4, 2.0, 1),
    "nothing-idle-still-1": (4, 1, 0.0, 1),
}


@pytest.mark.parametrize(("cores", "processes", "idle", "expected"), AUTO_CASES.values(), ids=AUTO_CASES)
def test_auto_threads_is_the_share_capped_by_the_idle_cores(cores, processes, idle, expected):
    assert auto_threads(cores, processes, idle) == expected


def cpu_line(cpu: int, idle: int, iowait: int, busy: int) -> str:
    # user nice system idle iowait irq softirq steal guest guest_nice
    return f"cpu{cpu} {busy} 0 0 {idle} {iowait} 0 0 0 7 7"


def test_idle_cores_sums_the_idle_share_of_this_process_cpus_only(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    stat.write_text("\n".join(["cpu 0 0 0 0 0 0 0 0", *(cpu_line(cpu, 0, 0, 0) for cpu in range(3))]))
    after = [cpu_line(0, 40, 10, 50), cpu_line(1, 0, 0, 100), cpu_line(2, 90, 10, 0), "intr 1 2 3"]
    monkeypatch.setattr(threads, "PROC_STAT", stat)
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: stat.write_text("\n".join(after)))
    assert idle_cores({0, 2}) == pytest.approx(1.5)  # cpu1, fully busy, is not ours


def test_idle_cores_is_unknown_without_proc_stat(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "PROC_STAT", tmp_path / "missing")
    assert idle_cores({0}) is None


def test_a_core_kept_busy_by_another_process_is_not_idle():
    cpu = min(os.sched_getaffinity(0))
    spinner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import os; os.sched_setaffinity(0, [{cpu}]); print(flush=True)\nwhile True: pass",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert spinner.stdout is not None and spinner.stdout.readline()  # pinned and spinning
        assert idle_cores({cpu}, seconds=0.3) < 0.5
    finally:
        spinner.kill()
        spinner.wait()


def test_a_busy_machine_caps_the_auto_share_and_says_so(compose_config, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "idle_cores", lambda cpus: 0.3)
    count, source = thread_share(compose_config(), None)
    assert count == 1 and source.endswith("processes each), 0.3 of them idle"), source


def test_threads_set_by_you_are_not_capped(compose_config, monkeypatch):
    monkeypatch.setattr(threads, "idle_cores", lambda cpus: 0.0)
    assert thread_share(compose_config("threads=3"), None) == (3, "threads=3")


def explained_share(source: str) -> int:
    """The thread count that an auto source line ("auto: 2 cores / (1 parallel jobs x 1
    processes each), 0.4 of them idle") stands for."""
    found = re.fullmatch(AUTO_SOURCE, source)
    assert found, source
    cores, jobs, per_job, idle = found.groups()
    return auto_threads(int(cores), int(jobs) * int(per_job), float(idle) if idle else None)


def test_explained_share_reads_the_source_line():
    assert explained_share("auto: 8 cores / (2 parallel jobs x 1 processes each), 7.6 of them idle") == 4
    assert explained_share("auto: 8 cores / (1 parallel jobs x 2 processes each)") == 4
