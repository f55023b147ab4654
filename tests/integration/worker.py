"""Run the real app as a worker process (`faust -A spice.app worker`) for tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


class WorkerProcess:
    def __init__(self, port: int, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.log = log
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0, ready: bool = True) -> WorkerProcess:
        """Start and wait until /health says ready (or, with ready=False, until it answers
        at all: a process started with a dependency down on purpose stays unready)."""
        self.require_ready = ready
        faust = str(Path(sys.executable).with_name("faust"))
        data_dir = self.log.parent / f"worker-{self.port}"
        self.proc = subprocess.Popen(
            [faust, "-A", "spice.app", "worker", "-l", "info", "--web-port", str(self.port)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            env={**os.environ, "SPICE_WEB_PORT": str(self.port), "SPICE_DATA_DIR": str(data_dir),
                 **self.env})
        try:
            self.wait_healthy(timeout)
        except BaseException:
            # A worker that never became healthy must not outlive the failed start: it
            # would hold the port (and its partitions) for every later test.
            self.kill()
            raise
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except urllib.error.HTTPError as error:
            return error.code == 503 and not getattr(self, "require_ready", True)
        except OSError:
            return False

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited ({self.proc.returncode}); see {self.log}")
            if self.healthy():
                return
            time.sleep(0.5)
        raise RuntimeError(f"worker not healthy after {timeout}s; see {self.log}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
