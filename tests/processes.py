"""Server processes a test starts and breaks: stopped in order, hung (SIGSTOP), resumed."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_until(
    condition: Callable[[], Any],
    what: str,
    timeout: float = 10.0,
    log: Callable[[], str] | None = None,
) -> Any:
    """Poll ``condition`` until it is truthy and return it; past ``timeout`` seconds, fail
    naming ``what``, with ``log()`` (the service's log) when given."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            shown = f"; log:\n{log()}" if log is not None else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}{shown}")
        time.sleep(0.02)


class ManagedProcess:
    """A server in ``self.process`` (None once stopped) that tests terminate, hang, resume."""

    process: subprocess.Popen | None = None

    def terminate(self) -> None:
        """SIGTERM after a SIGCONT (a hung process cannot exit); SIGKILL after 10 s."""
        if self.process is None:
            return
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def hang(self) -> None:
        """SIGSTOP: connections are still accepted by the kernel, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
