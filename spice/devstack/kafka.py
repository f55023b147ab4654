"""Apache Kafka in KRaft mode, run with java from the Maven Central jars.

One broker by default. When KAFKA_BOOTSTRAP_SERVERS names several loopback addresses
(`spice stack up --kafka-brokers 3` writes them), each is a node of one cluster: node k
serves clients on its address and its controller on KAFKA_CONTROLLER_PORT + 2k, every
node is broker and controller (a quorum of them), with its own data directory
`<run dir>/kafka-<port>`, and the cluster's internal topics replicated to three with two
in sync. The service's own topics take TOPIC_REPLICATION_FACTOR and
TOPIC_MIN_INSYNC_REPLICAS (3 and 2 on such a cluster).

Clients authenticate with SASL/SCRAM-SHA-256 on the client listener; the credentials
(the service's user and the broker's own) are written into the KRaft metadata when the
storage is formatted, from passwords generated under the run directory. The controller
listener stays PLAINTEXT on loopback: KRaft controllers cannot check SCRAM (the
credentials live in the metadata they serve), and only the broker talks to it.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from spice.devstack.base import Server, say
from spice.devstack.process import port_open
from spice.devstack.secrets import local_secret
from spice.settings import Settings

POM = Path(__file__).with_name("kafka-pom.xml")
MECHANISM = "SCRAM-SHA-256"
BROKER_USER = "spice-broker"
MAIN = "kafka.Kafka"


def broker_ports(settings: Settings) -> list[int]:
    return [int(address.rsplit(":", 1)[1]) for address in settings.kafka_bootstrap_servers.split(",")
            if address.strip()]


class KafkaServer(Server):
    """Node `node` of the brokers KAFKA_BOOTSTRAP_SERVERS names (the only one by default)."""

    name = "kafka"
    start_timeout = 90.0

    def __init__(self, settings: Settings, node: int = 0) -> None:
        self.node = node
        self.ports = broker_ports(settings)
        if len(self.ports) > 1:
            self.name = f"kafka-{self.ports[node]}"
        super().__init__(settings)

    @property
    def port(self) -> int:
        return self.ports[self.node]

    @property
    def clustered(self) -> bool:
        return len(self.ports) > 1

    def controller_port(self, node: int) -> int:
        return self.settings.kafka_controller_port + 2 * node

    @property
    def libs(self) -> Path:
        # One copy of the jars for every node (the one broker's directory)
        return self.settings.spice_run_dir / "kafka" / "libs"

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
            cluster_id = self._cluster_id()
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

    def _cluster_id(self) -> str:
        """One id for every node of a cluster, kept beside their data directories."""
        kept = self.settings.spice_run_dir / f"kafka-{self.ports[0]}.cluster-id"
        if self.clustered and kept.exists():
            return kept.read_text().strip()
        cluster_id = self._java("kafka.tools.StorageTool", "random-uuid").strip().splitlines()[-1]
        if self.clustered:
            kept.write_text(cluster_id + "\n")
        return cluster_id

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
        port, controller = self.port, self.controller_port(self.node)
        voters = ",".join(f"{k + 1}@127.0.0.1:{self.controller_port(k)}" for k in range(len(self.ports)))
        replicas = min(3, len(self.ports))
        in_sync = min(2, replicas)
        config = self.home / "server.properties"
        config.touch(mode=0o600)  # it holds the broker's password
        config.chmod(0o600)
        jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
                f'username="{BROKER_USER}" password="{self.broker_password}";')
        config.write_text(
            "\n".join([
                "process.roles=broker,controller",
                f"node.id={self.node + 1}",
                f"controller.quorum.voters={voters}",
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
                f"offsets.topic.replication.factor={replicas}",
                "offsets.topic.num.partitions=8",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={in_sync}",
                f"default.replication.factor={replicas}",
                f"min.insync.replicas={in_sync}",
                "group.initial.rebalance.delay.ms=0",
                # A broker that dies loses its partitions' leadership when its session
                # with the controller times out: Kafka's default 9 s is 9 s with no
                # leader for them. Loopback heartbeats do not get lost; 4 s is safe here.
                *(["broker.session.timeout.ms=4000", "broker.heartbeat.interval.ms=1000"]
                  if self.clustered else []),
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

        # this node itself, not whichever node of the cluster answers first
        return broker_answers(self.settings.model_copy(
            update={"kafka_bootstrap_servers": f"127.0.0.1:{self.port}"}))


class KafkaCluster(Server):
    """Every node KAFKA_BOOTSTRAP_SERVERS names, started together: a node of a quorum
    answers only once a majority of controllers runs, so none can be waited for alone."""

    name = "kafka"
    start_timeout = 120.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.nodes = [KafkaServer(settings, node) for node in range(len(broker_ports(settings)))]

    @property
    def port(self) -> int:
        return self.nodes[0].port

    def install(self) -> None:
        for node in self.nodes:
            node.install()

    def launch(self) -> None:
        for node in self.nodes:
            if node.process.pid() is None:
                node.launch()

    def ready(self) -> bool:
        return all(node.ready() for node in self.nodes)

    def up(self) -> str:
        if all(node.process.pid() is not None for node in self.nodes) and self.ready():
            return "already running"
        self.install()
        started = time.monotonic()
        self.launch()
        for node in self.nodes:
            node.process.wait_until(node.ready, self.start_timeout)
        return (f"{len(self.nodes)} brokers started in {time.monotonic() - started:.1f}s "
                f"(pids {', '.join(str(node.process.pid()) for node in self.nodes)})")

    def down(self) -> str:
        stopped = [node.process.stop() for node in self.nodes]
        return "stopped" if any(stopped) else "not running"

    def status(self) -> str:
        states = [node.status() for node in self.nodes]
        if all(state.startswith("up") for state in states):
            return f"up ({len(states)} brokers, ports {', '.join(str(n.port) for n in self.nodes)})"
        return "; ".join(f"{node.name}: {state}" for node, state in zip(self.nodes, states, strict=True))


def kafka(settings: Settings) -> Server:
    """The broker, or the cluster, KAFKA_BOOTSTRAP_SERVERS names."""
    return KafkaCluster(settings) if len(broker_ports(settings)) > 1 else KafkaServer(settings)
