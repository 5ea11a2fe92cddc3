"""What a running topology is made of, in ``$TOPOLOGY_DIR/state.json``, and its teardown.

Every process is recorded with its pid and its start time (``/proc/<pid>/stat``), so that a
pid the kernel gave to another process since is never signalled. ``down`` needs nothing
else: not Django, not the objects that started the services.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.processes import wait_until
from tests.topology import netns

DEFAULT_DIRECTORY = Path("/tmp/drf-scale-topology")
STOP_TIMEOUT = 10.0  # seconds a process has to exit on its signal before SIGKILL


def topology_dir() -> Path:
    return Path(os.environ.get("TOPOLOGY_DIR") or DEFAULT_DIRECTORY)


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks after boot); None if it is gone or a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaps it if it is our child and has exited
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


@dataclass
class Proc:
    """A process of the topology: how to start it again, and which one runs."""

    argv: list[str]
    log: str
    cwd: str | None = None
    netns: str | None = None  # a host (the service's environment), None: the root namespace
    pid: int = 0
    started: int | None = None

    def alive(self) -> bool:
        return bool(self.pid) and self.started is not None and start_time(self.pid) == self.started

    def spawn(self, env: dict[str, str] | None = None) -> None:
        """Start it in a session of its own (it outlives ``up``; its group is signalled)."""
        command = ["ip", "netns", "exec", self.netns, *self.argv] if self.netns else self.argv
        with open(self.log, "ab") as log:
            process = subprocess.Popen(
                command, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.pid, self.started = process.pid, start_time(process.pid)


def signal_all(targets: Sequence[tuple[int, int | None]], sig: signal.Signals) -> None:
    """``sig`` to each (pid, start time) still alive, to its group when it leads one; SIGKILL
    to those still alive STOP_TIMEOUT seconds later."""
    alive = [(pid, started) for pid, started in targets if started and start_time(pid) == started]
    for pid, _ in alive:
        with contextlib.suppress(ProcessLookupError):
            group = os.getpgid(pid) == pid
            for each in (signal.SIGCONT, sig):  # a hung (SIGSTOPped) process cannot exit
                (os.killpg if group else os.kill)(pid, each)

    def gone() -> bool:
        return all(start_time(pid) != started for pid, started in alive)

    try:
        wait_until(gone, "the topology's processes to exit", STOP_TIMEOUT)
    except pytest.fail.Exception:
        if sig != signal.SIGKILL:
            signal_all(alive, signal.SIGKILL)


@dataclass
class State:
    """Addresses, ports, processes and logs of a topology; saved after every change."""

    directory: str
    network: str = ""
    bridge: str = ""  # the bridge's address, where every shared service listens
    hosts: dict[str, str] = field(default_factory=dict)  # namespace -> address
    ports: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # the service's, without SERVED_BY
    token: str = ""
    clusters: dict[str, str] = field(default_factory=dict)  # PostgreSQL: name -> directory
    processes: dict[str, Proc] = field(default_factory=dict)
    seconds: float = 0.0  # how long ``up`` took

    @property
    def path(self) -> Path:
        return Path(self.directory) / "state.json"

    def save(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        temporary.replace(self.path)

    @classmethod
    def load(cls, directory: Path) -> State | None:
        try:
            data = json.loads((directory / "state.json").read_text())
        except FileNotFoundError:
            return None
        processes = {name: Proc(**proc) for name, proc in data.pop("processes").items()}
        return cls(**data, processes=processes)


def postmaster(directory: str) -> tuple[int, int | None] | None:
    """The running postmaster of the cluster in ``directory`` (from its postmaster.pid)."""
    try:
        pid = int((Path(directory) / "data" / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    return pid, start_time(pid)


def down(directory: Path) -> None:
    """Stop everything a (possibly partial) topology in ``directory`` started, remove the
    namespaces (and what runs in them), veths and bridge, and the directory (if it holds a
    state.json). Idempotent."""
    state = State.load(directory)
    if state is not None:
        clusters = [postmaster(path) for path in state.clusters.values()]
        # SIGQUIT: PostgreSQL's immediate shutdown (SIGTERM would wait for its clients).
        signal_all([found for found in clusters if found], signal.SIGQUIT)
        signal_all([(p.pid, p.started) for p in state.processes.values()], signal.SIGTERM)
    strays = [pid for name in netns.HOSTS for pid in netns.pids(name)]
    signal_all([(pid, start_time(pid)) for pid in strays], signal.SIGKILL)
    netns.destroy()
    if state is not None:  # never a directory that is not a topology's
        shutil.rmtree(directory, ignore_errors=True)
