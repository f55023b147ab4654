"""docker/: the compose file agrees with the settings, the probes and the README, and the
image runs Faust as PID 1 without root. (No Docker engine here: the files are checked.)"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from spice.settings import Settings

pytestmark = pytest.mark.unit
DOCKER = Path(__file__).resolve().parents[2] / "docker"
SPICE = ("worker-1", "worker-2", "api")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def env_names(service: dict) -> set[str]:
    return set(service.get("environment", {}))


def test_every_spice_variable_is_a_setting(compose):
    known = {name.upper() for name in Settings.model_fields}
    example = {line.split("=", 1)[0] for line in (DOCKER / "spice.env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    server_only = {"GRAFANA_ADMIN_PASSWORD"}  # read by compose for the Grafana service
    for name in SPICE:
        assert env_names(compose["services"][name]) <= known, name
    assert example - server_only <= known


def test_images_are_pinned_and_every_service_restarts_and_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        image = service.get("image", "")
        assert re.search(r":[v]?\d", image) or re.search(r":RELEASE\.", image), (name, image)
        assert service.get("restart") == "unless-stopped", name
        if name not in ("prometheus", "grafana"):
            assert "healthcheck" in service, name


def test_spice_processes_wait_for_healthy_servers_and_probe_readiness(compose):
    for name in SPICE:
        service = compose["services"][name]
        assert all(c == {"condition": "service_healthy"} for c in service["depends_on"].values())
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        env = service["environment"]
        assert env["SPICE_WEB_CANONICAL_URL"] == f"http://{name}:{env['SPICE_WEB_PORT']}"
    workers = compose["services"]["api"]["environment"]["SPICE_WORKER_URLS"].split(",")
    assert workers == [f"http://{w}:6066" for w in ("worker-1", "worker-2")]
    assert compose["services"]["api"]["ports"] == ["6066:6066"]
    readme = (DOCKER.parent / "README.md").read_text()
    assert "two workers and an API process (port 6066)" in readme  # what the README promises


def test_optional_backends_sit_behind_profiles_and_data_in_named_volumes(compose):
    services = compose["services"]
    assert services["elasticsearch"]["profiles"] == ["elasticsearch"]
    assert services["terminusdb"]["profiles"] == ["terminusdb"]
    # The Elasticsearch image speaks to the pinned 8.x client (a 9.x server refuses it).
    assert services["elasticsearch"]["image"].rsplit(":", 1)[1].startswith("8.19")
    for name in ("kafka", "s3", "postgres", "redis", "worker-1", "worker-2"):
        mounts = services[name]["volumes"]
        assert any(m.split(":", 1)[0] in compose["volumes"] for m in mounts), name


def test_the_image_runs_faust_as_pid_1_without_root():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["faust", "-A", "spice.app", "--quiet", "worker"', dockerfile, re.M)
    assert "sh -c" not in dockerfile and "CMD [\"sh\"" not in dockerfile
    assert re.search(r"^USER spice$", dockerfile, re.M)
    assert "/livez" in dockerfile


def test_prometheus_scrapes_every_spice_process_with_a_key(compose):
    config = yaml.safe_load((DOCKER / "monitoring" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["authorization"]["type"] == "Bearer"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    assert targets == {f"{name}:6066" for name in SPICE}


def test_the_elasticsearch_image_is_the_version_the_local_stack_runs(compose):
    pom = (DOCKER.parent / "spice" / "devstack" / "elasticsearch" / "pom.xml").read_text()
    version = re.search(r"<elasticsearch.version>([^<]+)</elasticsearch.version>", pom).group(1)
    assert compose["services"]["elasticsearch"]["image"].endswith(f":{version}")
