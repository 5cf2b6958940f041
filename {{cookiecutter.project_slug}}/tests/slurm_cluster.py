"""A one-node SLURM cluster on this machine, for the tests: munged, slurmctld and slurmd.

Everything lives in a fresh temp dir: slurm.conf (loopback addresses, free ports, this node's
real CPUs and memory from `slurmd -C`, no cgroups, no accounting), munge's key and socket
(`AuthInfo=socket=` points Slurm's clients at it, so a munged already running is left alone),
state, spool, pid and log files. Commands reach it through SLURM_CONF (`Cluster.env`). Only the
processes started here are stopped, by their pid.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
NODE = "testnode"
START_TIMEOUT_SECONDS = 120


def missing_programs() -> list[str]:
    """The SLURM and munge programs this machine lacks (Debian: slurmctld slurmd slurm-client munge)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    return [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name, path=search) is None]


def program(name: str) -> str:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    return shutil.which(name, path=search) or name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def node_hardware() -> dict[str, str]:
    """`slurmd -C`'s description of this machine: CPUs, sockets, cores, threads, RealMemory."""
    line = subprocess.run([program("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
    return {key: value for key, value in fields.items() if key not in ("NodeName", "UpTime")} | {
        "hostname": fields["NodeName"]
    }


def slurm_conf(root: Path, hardware: dict[str, str]) -> str:
    user = getpass.getuser()
    node = " ".join(f"{key}={value}" for key, value in hardware.items() if key != "hostname")
    return f"""\
ClusterName=pytest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
PlugStackConfig={root}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
KillWait=30
NodeName={NODE} NodeHostname={hardware["hostname"]} NodeAddr=127.0.0.1 {node} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class Cluster:
    root: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *command: str) -> str:
        result = subprocess.run(
            [program(command[0]), *command[1:]],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"
        return result.stdout

    def job_state(self, job_id: str) -> tuple[str, str]:
        """(state, reason) of a job, e.g. ("PENDING", "BeginTime"); ("", "") once it is gone."""
        state, _, reason = self.run("squeue", "-h", "-j", job_id, "-o", "%T %r").strip().partition(" ")
        return state, reason

    def start(self) -> None:
        self.root.chmod(0o755)  # munged wants its socket's dirs searchable by all
        for name in ("state", "spool"):
            (self.root / name).mkdir()
        (self.root / "plugstack.conf").write_text("")
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self.conf.write_text(slurm_conf(self.root, node_hardware()))
        munge = [
            f"--socket={self.root}/munge.socket",
            f"--key-file={key}",
            f"--pid-file={self.root}/munged.pid",
            f"--log-file={self.root}/munged.log",
            f"--seed-file={self.root}/munged.seed",
        ]
        self._spawn("munged", "-F", *munge)
        self._wait_for(lambda: (self.root / "munge.socket").exists(), "munged's socket")
        self._spawn("slurmctld", "-D", "-i", "-f", str(self.conf))
        self._spawn("slurmd", "-D", "-N", NODE, "-f", str(self.conf))
        self._wait_for(self._node_idle, f"node {NODE} idle in sinfo")

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.root / f"{name}.out", "w")  # noqa: SIM115 - closed with the process
        self.processes.append(
            subprocess.Popen(
                [program(name), *args], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        )
        log.close()

    def _node_idle(self) -> bool:
        result = subprocess.run(
            [program("sinfo"), "-h", "-n", NODE, "-o", "%T"],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
        )
        return result.stdout.strip() == "idle"

    def _wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not condition():
            if dead := [p for p in self.processes if p.poll() is not None]:
                raise RuntimeError(f"{dead[0].args[0]} exited with {dead[0].returncode}: {self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {what} after {START_TIMEOUT_SECONDS} s: {self.logs()}")
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-2000:]}" for path in sorted(self.root.glob("*.out"))
        )

    def stop(self) -> None:
        """Cancel the jobs left, then stop the daemons started here, newest first, by pid."""
        with suppress(Exception):
            self.run("scancel", "--user", getpass.getuser())
            self._wait_for(lambda: not self.run("squeue", "-h").strip(), "empty queue")
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()


@contextmanager
def slurm_cluster() -> Iterator[Cluster]:
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="pytest-slurm-")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)
