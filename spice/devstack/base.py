"""What every server of the local stack offers to `spice stack`."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path

from spice.devstack.process import ManagedProcess
from spice.settings import Settings


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def say(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


_apt_updated = False


def apt_install(*packages: str) -> None:
    """Install Debian packages; only called when a binary is missing."""
    global _apt_updated
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"missing {packages} and no apt-get to install them")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if not _apt_updated:
        say("apt-get update")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        _apt_updated = True
    say(f"apt-get install {' '.join(packages)}")
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


LAYOUT = "spice-layout"  # marks a data directory made with the stack's current credentials


class Server(ABC):
    name: str
    start_timeout: float = 60.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home: Path = settings.spice_run_dir / self.name
        self.process = ManagedProcess(self.name, settings.spice_run_dir / "pids")

    @property
    @abstractmethod
    def port(self) -> int: ...

    @abstractmethod
    def install(self) -> None:
        """Fetch what is missing; a no-op when everything is there."""

    @abstractmethod
    def launch(self) -> None:
        """Start the server process (prepare its data directory first)."""

    @abstractmethod
    def ready(self) -> bool:
        """True once the server answers its own protocol."""

    def after_ready(self) -> None:
        """Create what the service expects (databases, buckets); idempotent."""

    def mark_made_with(self, secret: str) -> None:
        """Record which credentials a data directory was made with (a fingerprint)."""
        (self.home / LAYOUT).write_text(_fingerprint(secret) + "\n")

    def check_made_with(self, secret: str, data: Path) -> None:
        """Data made before the stack had credentials, or with secrets since deleted,
        cannot be logged into: say so, and how to start afresh."""
        marker = self.home / LAYOUT
        if not marker.exists() or marker.read_text().strip() != _fingerprint(secret):
            raise RuntimeError(
                f"{data} was made with other credentials than those in "
                f"{self.settings.spice_run_dir / 'secrets'}: `spice stack down && rm -rf {data}` "
                "makes it anew")

    def up(self) -> str:
        if self.process.pid() is not None and self.ready():
            return "already running"
        if self.process.pid() is None and self.ready():
            raise RuntimeError(
                f"port {self.port} already answers but not from a {self.name} we started; "
                "set another port (see README, configuration)"
            )
        self.install()
        started = time.monotonic()
        self.launch()
        self.process.wait_until(self.ready, self.start_timeout)
        self.after_ready()
        return f"started in {time.monotonic() - started:.1f}s (pid {self.process.pid()})"

    def down(self) -> str:
        return "stopped" if self.process.stop() else "not running"

    def status(self) -> str:
        pid = self.process.pid()
        if pid is None:
            return "down"
        return f"up (pid {pid}, port {self.port})" if self.ready() else f"starting (pid {pid})"
