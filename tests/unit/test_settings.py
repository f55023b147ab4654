"""Settings are checked with bounds when the process starts, reported one line per bad
variable, and secrets never show in a repr or an error."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from spice.cli import main
from spice.handlers.rebuild import Progress
from spice.settings import Settings, describe

pytestmark = pytest.mark.unit


def problems(**env: str) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**env)
    return describe(caught.value)


def test_every_bad_variable_gets_its_own_line_named_as_in_the_environment():
    text = problems(topic_partitions="-3", rate_limit_per_second="0", spice_web_port="70000",
                    postgres_pool_max="1")
    lines = text.splitlines()[1:]
    assert len(lines) == 4, text
    assert any(line.strip().startswith("TOPIC_PARTITIONS: ") and "'-3'" in line for line in lines)
    assert any(line.strip().startswith("RATE_LIMIT_PER_SECOND: greater") or
               line.strip().startswith("RATE_LIMIT_PER_SECOND: Input should be greater than 0")
               for line in lines)
    assert any(line.strip().startswith("SPICE_WEB_PORT: ") for line in lines)
    assert any(line.strip().startswith("POSTGRES_POOL_MAX: ") for line in lines)


def test_secrets_are_not_echoed_in_errors_nor_in_a_repr():
    text = problems(auth_jwt_secret="hunter2-too-short")
    assert "AUTH_JWT_SECRET: must be at least 32 bytes" in text and "hunter2" not in text
    settings = Settings(postgres_password="pg-secret-value", s3_secret_access_key="s3-secret-value",
                        auth_bootstrap_admin_key="admin-secret-value")
    shown = repr(settings) + str(settings.model_dump())
    for secret in ("pg-secret-value", "s3-secret-value", "admin-secret-value"):
        assert secret not in shown
    assert settings.postgres_password.get_secret_value() == "pg-secret-value"
    assert "pg-secret-value" in settings.postgres_dsn


def test_replication_settings_are_bounded_against_each_other():
    assert "must not exceed TOPIC_REPLICATION_FACTOR" in problems(
        topic_replication_factor="1", topic_min_insync_replicas="2")
    cluster = Settings(topic_replication_factor=3, topic_min_insync_replicas=2)
    assert (cluster.topic_replication_factor, cluster.topic_min_insync_replicas) == (3, 2)


def test_the_canonical_url_is_separate_from_the_bind_address():
    assert Settings(spice_web_host="0.0.0.0", spice_web_port=6066,
                    spice_web_canonical_url="http://worker-1:6066/").canonical_url == \
        "http://worker-1:6066"
    assert Settings(spice_web_host="127.0.0.1", spice_web_port=16066).canonical_url == \
        "http://127.0.0.1:16066"


def test_the_cli_reports_bad_settings_without_a_traceback(capsys, monkeypatch):
    from spice.settings import get_settings

    monkeypatch.setenv("RATE_LIMIT_PER_SECOND", "0")
    get_settings.cache_clear()
    try:
        assert main(["keys", "list"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "RATE_LIMIT_PER_SECOND" in err and "Traceback" not in err


def test_the_worker_exits_with_one_line_per_bad_variable():
    result = subprocess.run([sys.executable, "-c", "import spice.app"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "TOPIC_PARTITIONS": "-3",
                                             "RATE_LIMIT_PER_SECOND": "0"})
    assert result.returncode == 2, result.stderr
    assert "TOPIC_PARTITIONS" in result.stderr and "RATE_LIMIT_PER_SECOND" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_subcommand_help(capsys):
    from spice import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"spice {__version__}"
    with pytest.raises(SystemExit):
        main(["stack", "--help"])
    assert "status  print each server's state" in capsys.readouterr().out


class Log(io.StringIO):
    def isatty(self) -> bool:
        return False


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_only_on_a_terminal():
    log, terminal = Log(), Terminal()
    for out in (log, terminal):
        progress = Progress(100, out)
        progress.add(50, force=True)
        progress.add(50, force=True)
    assert "\r" not in log.getvalue() and log.getvalue().count("\n") == 2
    assert "rebuild: 100 of 100 envelopes" in log.getvalue()
    assert terminal.getvalue().count("\r") == 2 and "[####" in terminal.getvalue()


def test_json_log_lines_carry_the_trace_they_belong_to():
    import json
    import logging

    from spice import tracing
    from spice.observability import JsonFormatter, log_context

    record = logging.LogRecord("spice.test", logging.INFO, __file__, 1, "applied", (), None)
    trace_id, span_id = "ab" * 16, "cd" * 8
    with tracing.span("command", f"00-{trace_id}-{span_id}-01"), log_context("c-1", "e-1"):
        line = json.loads(JsonFormatter().format(record))
    assert (line["trace_id"], line["span_id"], line["command_id"]) == (trace_id, span_id, "c-1")
    assert "trace_id" not in json.loads(JsonFormatter().format(record))  # outside any step
