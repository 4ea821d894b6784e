"""Run the simulated IOC, and a Channel Access repeater, as child processes on loopback.

Used by the tests and the IOC dry run. The client side of Channel Access (pyepics' libca, which
ophyd loads on import) reads its environment once, when it starts, so call `configure_loopback`
before the first ``import ophyd``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from sim.ioc import LOOPBACK, READY_LINE, SERVER_LOOPBACK_ENV

__all__ = ["free_port", "configure_loopback", "IOCProcess", "RepeaterProcess"]

_ROOT = Path(__file__).resolve().parent.parent


def free_port(exclude=()) -> int:
    """A port number free for both TCP and UDP on loopback right now, and not in ``exclude``."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = tcp.getsockname()[1]
            if port in exclude:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port on loopback")


def configure_loopback(server_port: int | None = None, repeater_port: int | None = None,
                       environ=os.environ) -> dict[str, str]:
    """Point Channel Access clients and servers of this process (and its children) at loopback only.

    Parameters
    ----------
    server_port, repeater_port : int or None
        ``EPICS_CA_SERVER_PORT`` / ``EPICS_CA_REPEATER_PORT``; None leaves what is set (5064/5065).
    environ : mapping
        Where to set them (``os.environ`` by default).

    Returns
    -------
    dict
        The variables set.
    """
    settings = {"EPICS_CA_AUTO_ADDR_LIST": "NO", "EPICS_CA_ADDR_LIST": LOOPBACK, **SERVER_LOOPBACK_ENV}
    if server_port is not None:
        settings["EPICS_CA_SERVER_PORT"] = str(int(server_port))
    if repeater_port is not None:
        settings["EPICS_CA_REPEATER_PORT"] = str(int(repeater_port))
        settings["EPICS_CAS_BEACON_PORT"] = str(int(repeater_port))  # servers beacon to the repeater
    environ.update(settings)
    return settings


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _ChildProcess:
    """A child process whose output is kept (the last lines) and which is stopped by its pid."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.process: subprocess.Popen | None = None
        self.output: deque[str] = deque(maxlen=200)
        self._reader: threading.Thread | None = None
        self._line = threading.Condition()

    @property
    def pid(self) -> int | None:
        """Process id of the child (None before start)."""
        return None if self.process is None else self.process.pid

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            with self._line:
                self.output.append(line.rstrip("\n"))
                self._line.notify_all()
        with self._line:
            self._line.notify_all()

    def _launch(self) -> None:
        # stdin is a pipe the child watches: when this process ends, however it ends, the child does.
        self.process = subprocess.Popen([*self.argv, "--exit-on-stdin-eof"], env=_child_env(),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                                        text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"output of {self.pid}")
        self._reader.start()

    def running(self) -> bool:
        """Whether the child is alive."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """End the child and return its exit code.

        Closing its standard input asks it to exit; if it lingers, its process group is interrupted,
        then killed.
        """
        if self.process is None:
            return None
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        for sig in (None, signal.SIGINT, signal.SIGKILL):
            if sig is not None:
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    pass
            try:
                self.process.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._reader is not None:
            self._reader.join(timeout)
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class IOCProcess(_ChildProcess):
    """``python -m sim.ioc ...`` as a child process; `start` returns once its PVs are served.

    Parameters
    ----------
    *args : str
        Command-line arguments of ``sim.ioc`` (``"--image", path, "--prefix", "t1:"``, ...).

    Examples
    --------
    >>> configure_loopback(server_port=free_port())  # doctest: +SKIP
    >>> with IOCProcess("--prefix", "t1:").start() as ioc:  # doctest: +SKIP
    ...     ...
    """

    def __init__(self, *args: str):
        super().__init__([sys.executable, "-m", "sim.ioc", *map(str, args)])
        self.ready_line: str | None = None

    def start(self, timeout: float = 30.0) -> IOCProcess:
        """Start the IOC and wait for its ready line; raise RuntimeError with its output if it fails."""
        self._launch()
        deadline = time.monotonic() + timeout
        with self._line:
            while True:
                ready = [line for line in self.output if line.startswith(READY_LINE)]
                if ready:
                    self.ready_line = ready[0]
                    return self
                if not self.running() or time.monotonic() > deadline:
                    break
                self._line.wait(0.1)
        self.stop()
        tail = "\n".join(self.output)
        raise RuntimeError(f"sim.ioc did not start (exit code {self.process.returncode}):\n{tail}")


class RepeaterProcess(_ChildProcess):
    """A Channel Access repeater (caproto's) on ``EPICS_CA_REPEATER_PORT``, owned by this process.

    Start it before the first CA client of the process, so libca finds it and does not try to
    spawn a ``caRepeater`` of its own that nobody would stop.
    """

    def __init__(self):
        super().__init__([sys.executable, "-m", "sim.repeater"])

    def start(self, timeout: float = 10.0) -> RepeaterProcess:
        """Start the repeater and wait until its UDP port is taken."""
        port = int(os.environ.get("EPICS_CA_REPEATER_PORT", "5065"))
        self._launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((LOOPBACK, port))
                except OSError:
                    return self  # bound by the repeater
            time.sleep(0.05)
        tail = "\n".join(self.output)
        self.stop()
        raise RuntimeError(f"CA repeater did not start on port {port}:\n{tail}")
