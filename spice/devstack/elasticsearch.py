"""Elasticsearch 8.19, one node on loopback, from the Maven Central jars.

Maven Central carries the server and its Netty HTTP transport but not the distribution's
launcher, modules or security. `elasticsearch/` holds what stands in for them: SpiceNode
(a main that starts a node with its plugins loaded from the class path), SpicePlugin (the
`cjk` analyzer and `edge_ngram` filter of analysis-common, and `GET /`) and
BasicAuthPlugin (HTTP basic authentication with the stack's local secret). The jars and
the compiled classes are cached under SPICE_CACHE_DIR, keyed by the sources' checksum.
"""
from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from spice.devstack.base import Server, say

SOURCES = Path(__file__).with_name("elasticsearch")
MAIN = "org.elasticsearch.node.SpiceNode"


def _source_files() -> list[Path]:
    return sorted([SOURCES / "pom.xml", *SOURCES.glob("src/**/*.java")])


class ElasticsearchServer(Server):
    name = "elasticsearch"
    start_timeout = 120.0

    @property
    def port(self) -> int:
        return urlparse(self.settings.elasticsearch_url).port or 9200

    @property
    def build(self) -> Path:
        digest = hashlib.sha256()
        for path in _source_files():
            digest.update(path.relative_to(SOURCES).as_posix().encode() + b"\0" + path.read_bytes())
        return self.settings.spice_cache_dir / f"elasticsearch-node-{digest.hexdigest()[:16]}"

    def install(self) -> None:
        for tool in ("java", "javac", "mvn"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is needed to run Elasticsearch (Java 17 and Maven)")
        if not (self.build / "complete").exists():
            self._build()
        self._write_config()

    def _build(self) -> None:
        say("elasticsearch: resolving the server jars from Maven Central, compiling the node")
        if self.build.exists():
            shutil.rmtree(self.build)
        libs, classes = self.build / "libs", self.build / "classes"
        subprocess.run(["mvn", "-q", "-B", "-f", str(SOURCES / "pom.xml"),
                        "dependency:copy-dependencies", f"-DoutputDirectory={libs}",
                        "-DincludeScope=runtime"], check=True)
        subprocess.run(["javac", "--release", "17", "-nowarn", "-d", str(classes), "-cp", f"{libs}/*",
                        *map(str, SOURCES.glob("src/**/*.java"))], check=True)
        (self.build / "complete").write_text("ok\n")

    def _write_config(self) -> None:
        for sub in ("config", "data", "logs"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        password = self.settings.elasticsearch_password.get_secret_value()
        credentials = f"{self.settings.elasticsearch_username}:{password}"
        auth = self.home / "config" / "basic-auth"
        auth.touch(mode=0o600)
        auth.chmod(0o600)
        auth.write_text(credentials + "\n")
        (self.home / "config" / "elasticsearch.yml").write_text("\n".join([
            "cluster.name: spice",
            "node.name: spice-es",
            f"path.data: {self.home / 'data'}",
            f"path.logs: {self.home / 'logs'}",
            "network.host: 127.0.0.1",
            f"http.port: {self.port}",
            f"transport.port: {self.settings.elasticsearch_transport_port}",
            "discovery.type: single-node",
            # A developer's disk at 90 % would otherwise turn every index read-only.
            "cluster.routing.allocation.disk.threshold_enabled: false",
            "action.destructive_requires_name: false",
            f"spice.basic_auth.file: {auth}",
            "",
        ]))

    def launch(self) -> None:
        self.process.start(
            ["java", "-Xms512m", "-Xmx512m", "-XX:+UseG1GC", "-Dfile.encoding=UTF-8",
             "-Djava.io.tmpdir=" + str(self.home / "data"),
             "-cp", f"{self.build / 'classes'}:{self.build / 'libs'}/*", MAIN, str(self.home)],
            cwd=self.home,
        )

    def ready(self) -> bool:
        token = base64.b64encode(
            f"{self.settings.elasticsearch_username}:{self.settings.elasticsearch_password.get_secret_value()}".encode()
        ).decode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/",
                                         headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False
