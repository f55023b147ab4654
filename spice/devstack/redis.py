"""Redis 7 from Debian's redis-server package, with a password (`requirepass`)."""
from __future__ import annotations

import os
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
        # The password in a file of mode 600, not on the command line, which every
        # local user can read in /proc.
        config = self.home / "redis.conf"
        config.touch(mode=0o600)
        config.write_text(f"requirepass {self.settings.redis_password.get_secret_value()}\n")
        self.process.start(
            [
                "redis-server", str(config), "--port", str(self.port), "--bind", "127.0.0.1",
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
            env={**os.environ, "REDISCLI_AUTH": self.settings.redis_password.get_secret_value()},
        )
        return probe.stdout.strip() == "PONG"
