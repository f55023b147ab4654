"""TerminusDB v11.1.14, built from the vendored source and run on loopback.

The build (Debian's SWI-Prolog 9.0.4, clang, protobuf, gmp, and cargo; about 7 minutes on
2 cores) happens once per source checksum and bind patch: the one executable it makes is
kept under SPICE_CACHE_DIR, outside the work tree, and later starts take about a second.
terminusdb-bind.patch makes the server listen on TERMINUSDB_SERVER_IP: v11 binds every
interface, and the stack never listens beyond loopback. The admin password is a local
secret, set when the store is initialised.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from spice.devstack.base import Server, apt_install, say

PATCH = Path(__file__).with_name("terminusdb-bind.patch")
BUILD_PACKAGES = ("swi-prolog-nox", "clang", "libclang-dev", "protobuf-compiler", "libgmp-dev", "make")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class TerminusServer(Server):
    name = "terminusdb"
    start_timeout = 60.0

    @property
    def port(self) -> int:
        return urlparse(self.settings.terminusdb_url).port or 6363

    @property
    def build_key(self) -> str:
        return hashlib.sha256((self.settings.terminusdb_source_sha256 + PATCH.read_text()).encode()
                              ).hexdigest()[:16]

    @property
    def executable(self) -> Path:
        return self.settings.spice_cache_dir / f"terminusdb-v11.1.14-{self.build_key}" / "terminusdb"

    def install(self) -> None:
        if shutil.which("swipl") is None:  # the executable links libswipl at run time too
            apt_install("swi-prolog-nox")
        if not self.executable.exists():
            self._build()
        db = self.home / "db"
        password = self.settings.terminusdb_password.get_secret_value()
        if not db.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            say("terminusdb: initialising the store (admin password from the local secrets)")
            subprocess.run([str(self.executable), "store", "init", "--key", password],
                           check=True, capture_output=True, env=self._env())
            self.mark_made_with(password)
        else:
            self.check_made_with(password, db)

    def _build(self) -> None:
        source = self.settings.terminusdb_source
        if not source.exists():
            raise RuntimeError(f"TerminusDB source not found at {source} (TERMINUSDB_SOURCE)")
        actual = sha256_of(source)
        if actual != self.settings.terminusdb_source_sha256:
            raise RuntimeError(f"{source}: sha256 {actual}, expected "
                               f"{self.settings.terminusdb_source_sha256} (TERMINUSDB_SOURCE_SHA256)")
        missing = [tool for tool in ("swipl", "clang", "protoc", "make") if shutil.which(tool) is None]
        if missing or not any(Path("/usr/include").glob("*/gmp.h")):
            apt_install(*BUILD_PACKAGES)
        if shutil.which("cargo") is None:
            raise RuntimeError("cargo is needed to build TerminusDB (the Rust stable toolchain)")
        self.executable.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        say(f"terminusdb: building from {source.name} (first run only, about 7 minutes)")
        with tempfile.TemporaryDirectory(dir=self.settings.spice_cache_dir, prefix="build-") as tmp:
            with tarfile.open(source) as archive:
                archive.extractall(tmp, filter="tar")
            tree = next(Path(tmp).iterdir())
            subprocess.run(["patch", "-p1", "-i", str(PATCH)], cwd=tree, check=True,
                           capture_output=True)
            log = self.executable.parent / "build.log"
            with open(log, "wb") as out:
                result = subprocess.run(["sh", "build-offline-deps.sh"], cwd=tree, stdout=out,
                                        stderr=subprocess.STDOUT,
                                        env={**os.environ, "LANG": "C.UTF-8"})
            if result.returncode != 0:
                raise RuntimeError(f"the TerminusDB build failed; see {log}")
            partial = self.executable.with_suffix(".partial")
            shutil.copy2(tree / "terminusdb", partial)
            partial.rename(self.executable)  # complete or absent, never half-copied
        say(f"terminusdb: built in {time.monotonic() - started:.0f}s, cached at {self.executable}")

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TERMINUSDB_SERVER_DB_PATH": str(self.home / "db"),
            "TERMINUSDB_SERVER_PORT": str(self.port),
            "TERMINUSDB_SERVER_IP": "127.0.0.1",
            "TERMINUSDB_ENABLE_DASHBOARD": "false",
            "TERMINUSDB_LOG_LEVEL": "WARNING",
        }

    def launch(self) -> None:
        self.process.env = {k: v for k, v in self._env().items() if k.startswith("TERMINUSDB_")}
        self.process.start([str(self.executable), "serve"], cwd=self.home)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/ok", timeout=2) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False
