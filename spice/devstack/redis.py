"""Redis 7 from Debian's redis-server package."""
from __future__ import annotations

import shutil
import subprocess

from spice.devstack.base import Server, apt_install


class RedisServer(Server):
    name = "redis"

    @property
    def port(self) -> int:
        return self.settings.redis_port

    def install(self) -> None:
        if shutil.which("redis-server") is None:
            apt_install("redis-server")

    def launch(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.process.start(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.home), "--daemonize", "no",
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            ],
            cwd=self.home,
        )

    def ready(self) -> bool:
        if shutil.which("redis-cli") is None:
            return False
        probe = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "PING"],
            capture_output=True, text=True, timeout=5,
        )
        return probe.stdout.strip() == "PONG"
