"""Apache Kafka in KRaft mode, run with java from the Maven Central jars.

Clients authenticate with SASL/SCRAM-SHA-256 on the client listener; the credentials
(the service's user and the broker's own) are written into the KRaft metadata when the
storage is formatted, from passwords generated under the run directory. The controller
listener stays PLAINTEXT on loopback: KRaft controllers cannot check SCRAM (the
credentials live in the metadata they serve), and only the broker talks to it.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from spice.devstack.base import Server, say
from spice.devstack.process import port_open
from spice.devstack.secrets import local_secret

POM = Path(__file__).with_name("kafka-pom.xml")
MECHANISM = "SCRAM-SHA-256"
BROKER_USER = "spice-broker"
MAIN = "kafka.Kafka"


class KafkaServer(Server):
    name = "kafka"
    start_timeout = 90.0

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    def install(self) -> None:
        for tool in ("java", "mvn"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is needed to run Kafka (Java 17 and Maven)")
        if not any(self.libs.glob("kafka_2.13-*.jar")):
            say("resolving Kafka jars from Maven Central (first run only)")
            subprocess.run(
                ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                 f"-DoutputDirectory={self.libs}", "-DincludeScope=runtime"],
                check=True,
            )
        self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = self._java("kafka.tools.StorageTool", "random-uuid").strip().splitlines()[-1]
            say(f"formatting KRaft storage (cluster {cluster_id}, SCRAM users)")
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id,
                       "-c", str(self.home / "server.properties"),
                       "--add-scram", self._scram(BROKER_USER, self.broker_password),
                       "--add-scram", self._scram(self.settings.kafka_sasl_username,
                                                  self.settings.kafka_sasl_password.get_secret_value()))
            self.mark_made_with(self.broker_password + self.settings.kafka_sasl_password.get_secret_value())
        else:
            self.check_made_with(self.broker_password + self.settings.kafka_sasl_password.get_secret_value(),
                                 self.home / "data")

    @property
    def broker_password(self) -> str:
        return local_secret(self.settings.spice_run_dir, "kafka-broker-password")

    def _scram(self, user: str, password: str) -> str:
        return f"{MECHANISM}=[name={user},password={password}]"

    def _java(self, main: str, *args: str) -> str:
        return subprocess.run(
            ["java", f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
             "-cp", f"{self.libs}/*", main, *args],
            check=True, capture_output=True, text=True,
        ).stdout

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        port, controller = self.port, self.settings.kafka_controller_port
        config = self.home / "server.properties"
        config.touch(mode=0o600)  # it holds the broker's password
        config.chmod(0o600)
        jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
                f'username="{BROKER_USER}" password="{self.broker_password}";')
        config.write_text(
            "\n".join([
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=SASL_PLAINTEXT",
                f"sasl.enabled.mechanisms={MECHANISM}",
                f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
                f"listener.name.sasl_plaintext.{MECHANISM.lower()}.sasl.jaas.config={jaas}",
                f"log.dirs={self.home / 'data'}",
                f"num.partitions={self.settings.topic_partitions}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                # Topics are created by the service with their partition counts; an
                # auto-created one-partition topic would silently break key routing.
                "auto.create.topics.enable=false",
                "",
            ])
        )
        (self.home / "log4j.properties").write_text(
            "\n".join([
                "log4j.rootLogger=INFO, file",
                "log4j.logger.kafka.request.logger=WARN",
                "log4j.appender.file=org.apache.log4j.FileAppender",
                f"log4j.appender.file.File={self.home / 'server.log'}",
                "log4j.appender.file.layout=org.apache.log4j.PatternLayout",
                "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n",
                "",
            ])
        )

    def launch(self) -> None:
        self.process.start(
            ["java", "-Xms256m", "-Xmx1g", "-XX:+UseG1GC",
             f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
             "-cp", f"{self.libs}/*", MAIN, str(self.home / "server.properties")],
            cwd=self.home,
        )

    def ready(self) -> bool:
        if not port_open(self.port):
            return False
        from spice.devstack.kafka_probe import broker_answers

        return broker_answers(self.settings)
