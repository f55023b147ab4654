"""The `spice` command line: the local stack, and operator tools."""
from __future__ import annotations

import argparse
import json
import sys


def _stack(args: argparse.Namespace) -> int:
    from spice.devstack import stack

    if args.kafka_brokers:
        _kafka_cluster(args.kafka_brokers)
    if args.action == "up":
        stack.up(extras=[e.strip() for e in (args.with_ or "").split(",") if e.strip()])
    elif args.action == "down":
        stack.down()
    else:
        states = stack.status()
        print(json.dumps(states, indent=2))
        return 0 if all(s.startswith("up") for s in states.values()) else 3
    return 0


def _kafka_cluster(brokers: int) -> None:
    """`--kafka-brokers N`: N brokers on every second port from the configured one; the
    settings a service needs to use them are printed, to export."""
    import os

    from spice.settings import get_settings

    first = get_settings().kafka_port
    cluster = {"KAFKA_BOOTSTRAP_SERVERS": ",".join(f"127.0.0.1:{first + 2 * k}" for k in range(brokers)),
               "TOPIC_REPLICATION_FACTOR": str(min(3, brokers)),
               "TOPIC_MIN_INSYNC_REPLICAS": str(min(2, brokers))}
    os.environ.update(cluster)
    get_settings.cache_clear()
    print("# the service on this cluster needs:\n" + "\n".join(f"export {k}={v}" for k, v in cluster.items()),
          file=sys.stderr)


def _publish(args: argparse.Namespace) -> int:
    """Run the publisher alone (the worker runs the same loop as a task)."""
    import asyncio
    import logging

    from spice.agents.publisher import Publisher
    from spice.runtime import Runtime
    from spice.settings import get_settings
    from spice.topics import ensure_topics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def run() -> None:
        settings = get_settings()
        await ensure_topics(settings, settings.topic_partitions,
                            settings.spice_app_id)
        runtime = await Runtime.open(settings)
        try:
            await Publisher(runtime.event_store, settings, start_after=args.start_after,
                            checkpoint_key=args.checkpoint_key).run()
        finally:
            await runtime.close()

    asyncio.run(run())
    return 0


def _run(args: argparse.Namespace) -> int:
    """Run a worker (what `make run` ends with) or an API process in the foreground."""
    import os
    import shutil

    from spice.settings import get_settings

    settings = get_settings()
    role = args.role
    # A worker keeps the configured port; an API process on the same host takes the next.
    port = args.port or settings.spice_web_port + (1 if role == "api" else 0)
    faust = shutil.which("faust") or os.path.join(os.path.dirname(sys.executable), "faust")
    what = "worker (agents, publisher, status tables and the API)" if role == "worker" else \
        f"API process (no agents; asks the workers at {settings.spice_worker_urls})"
    print(f"spice: {what}\nspice: API on http://{settings.spice_web_host}:{port}/api/v1 "
          f"(health: /health, OpenAPI: /openapi.json); stack logs in {settings.spice_run_dir}/pids",
          file=sys.stderr, flush=True)
    if settings.auth_enabled:
        from spice.keys_cli import local_admin_key

        key = local_admin_key(settings)
        path = f"{settings.spice_run_dir}/admin-key"
        if sys.stderr.isatty():  # a person reading a terminal, not a log file
            print(f"spice: authentication is on. Admin API key (also in {path}):\n  {key}\n"
                  f"  curl -H 'X-API-Key: {key}' ...   (more keys: spice keys create --help)",
                  file=sys.stderr, flush=True)
        else:
            print(f"spice: authentication is on; the admin API key is in {path} (mode 600)",
                  file=sys.stderr, flush=True)
    env = {**os.environ, "SPICE_ROLE": role, "SPICE_WEB_PORT": str(port)}
    if role == "api":  # its own data directory: Faust keeps a lock file there
        env.setdefault("SPICE_DATA_DIR", str(settings.spice_run_dir / f"api-{port}"))
    os.execve(faust, [faust, "-A", "spice.app", "worker", "-l", args.log_level,
                      "--web-port", str(port)], env)
    return 0


def _keys(args: argparse.Namespace) -> int:
    from spice import keys_cli

    return keys_cli.run(args)


def _dlq(args: argparse.Namespace) -> int:
    import asyncio

    from spice import dlq
    from spice.settings import get_settings

    settings = get_settings()
    if args.action == "list":
        topics = (args.topic,) if args.topic else dlq.DLQ_TOPICS
        letters = asyncio.run(dlq.read(settings, topics, limit=args.limit))
        for letter in letters:
            print(json.dumps(letter.summary(), ensure_ascii=False))
        print(f"{len(letters)} dead letters", file=sys.stderr)
    elif args.action == "show":
        letters = asyncio.run(dlq.read(settings, (args.topic,), offset=args.offset))
        if not letters:
            raise RuntimeError(f"no dead letter at {args.topic}@{args.offset}")
        print(json.dumps(letters[0].body, indent=2, ensure_ascii=False))
    else:
        print(json.dumps(asyncio.run(dlq.retry(settings, args.topic, args.offset))))
    return 0


def _projections(args: argparse.Namespace) -> int:
    import asyncio

    from spice.handlers import rebuild
    from spice.runtime import Runtime
    from spice.settings import get_settings

    async def run() -> dict[str, object]:
        runtime = await Runtime.open(get_settings())
        try:
            if args.action == "rebuild":
                return await rebuild.rebuild(runtime, args.db)
            return await rebuild.verify(runtime, args.db)
        finally:
            await runtime.close()

    report = asyncio.run(run())
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 1 if report.get("drift_count") else 0


def _audit(args: argparse.Namespace) -> int:
    import asyncio

    from spice.audit_verify import verify_all
    from spice.runtime import Runtime
    from spice.settings import get_settings

    async def run() -> dict[str, object]:
        runtime = await Runtime.open(get_settings())
        try:
            return await verify_all(runtime, args.db)
        finally:
            await runtime.close()

    report = asyncio.run(run())
    print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    return 0 if report["ok"] else 1


def _verify(args: argparse.Namespace) -> int:
    import asyncio

    from spice.handlers import rebuild
    from spice.runtime import Runtime
    from spice.settings import get_settings

    async def run() -> dict[str, object]:
        runtime = await Runtime.open(get_settings())
        try:
            return {"read_model": await rebuild.verify(runtime, args.db),
                    "history": await rebuild.verify_history(runtime, args.db)}
        finally:
            await runtime.close()

    report = asyncio.run(run())
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 1 if any(part.get("drift_count") for part in report.values()) else 0  # type: ignore[attr-defined]


def _produce(args: argparse.Namespace) -> int:
    import asyncio

    from spice.domain.errors import ValidationFailed
    from spice.producer import command_envelope, produce
    from spice.settings import get_settings

    try:
        data = json.loads(args.data)
        envelope = command_envelope(args.command_type, data, actor=args.actor)
    except json.JSONDecodeError as error:
        raise RuntimeError(f"DATA is not JSON: {error}") from None
    except (ValidationFailed, ValueError) as error:
        raise RuntimeError(f"not a valid command: {error}") from None
    asyncio.run(produce(get_settings(), [envelope]))
    print(json.dumps({"command_id": envelope.command_id, "topic": envelope.topic,
                      "key": envelope.aggregate_id}))
    return 0


def _config(args: argparse.Namespace) -> int:
    from spice import config_doc
    from spice.settings import get_settings

    print(config_doc.markdown() if args.markdown else config_doc.effective(get_settings()))
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from spice.domain.contract import schemas

    published = schemas()
    if args.name is None:
        print("\n".join(published))
        return 0
    if args.name not in published:
        raise RuntimeError(f"no schema '{args.name}' (spice schemas lists them)")
    print(json.dumps(published[args.name], indent=2))
    return 0


EXIT_CODES = """exit codes:
  0  done
  1  the operation failed (the message says why)
  2  bad usage or invalid settings (one line per bad variable)
  3  status: a server of the local stack is down"""


def build_parser() -> argparse.ArgumentParser:
    from spice import __version__

    parser = argparse.ArgumentParser(prog="spice", description=__doc__, epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"spice {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stack = sub.add_parser(
        "stack", help="the local stack of real servers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The local stack: Kafka (KRaft), SeaweedFS (S3), PostgreSQL and Redis on "
                    "loopback ports, plus Elasticsearch and TerminusDB when asked; data, logs "
                    "and generated secrets under SPICE_RUN_DIR (.run).",
        epilog="actions:\n  up      install what is missing, start what is down, wait until "
               "each answers\n  down    stop the servers this stack started (by PID)\n"
               "  status  print each server's state as JSON; exit 3 if one is down")
    stack.add_argument("action", choices=["up", "down", "status"], help="up, down or status")
    stack.add_argument("--with", dest="with_", metavar="SERVERS",
                       help="also start these servers: elasticsearch,terminusdb "
                            "(or set SPICE_STACK_EXTRAS)")
    stack.add_argument("--kafka-brokers", type=int, choices=range(1, 6), metavar="N", default=0,
                       help="run Kafka as a cluster of N brokers (KRaft quorum, replication 3, "
                            "2 in sync); prints the settings the service needs")
    stack.set_defaults(run=_stack)
    run = sub.add_parser("run", help="run a worker (agents, publisher, HTTP API) or an API "
                         "process in the foreground")
    run.add_argument("--log-level", default="info")
    run.add_argument("--role", choices=("worker", "api"), default="worker",
                     help="api: the HTTP API alone, beside workers (docs/roles.md)")
    run.add_argument("--port", type=int, default=0,
                     help="web port (default SPICE_WEB_PORT; +1 for --role api)")
    run.set_defaults(run=_run)
    dead = sub.add_parser("dlq", help="inspect dead letters and submit them again")
    dead.add_argument("action", choices=["list", "show", "retry"])
    dead.add_argument("topic", nargs="?", help="a DLQ topic, e.g. ontology_commands_dlq")
    dead.add_argument("offset", nargs="?", type=int, help="the dead letter's offset (show, retry)")
    dead.add_argument("--limit", type=int, default=100, help="list: the latest N per topic")
    dead.set_defaults(run=_dlq)
    keys = sub.add_parser("keys", help="API keys: create, revoke, list (only hashes are stored)")
    keys.add_argument("action", choices=["create", "revoke", "list"])
    keys.add_argument("key_id", nargs="?", help="revoke: the key's id")
    keys.add_argument("--name", help="create: who or what the key is for (the actor of its writes)")
    keys.add_argument("--grant", action="append", metavar="DB=ROLE",
                      help="create: a role (viewer, editor, admin) on a database or '*'; repeatable "
                           "(default '*=viewer')")
    keys.add_argument("--rate", type=float, help="create: requests per second (default from settings)")
    keys.set_defaults(run=_keys)
    projections = sub.add_parser("projections", help="rebuild or verify the search read model")
    projections.add_argument("action", choices=["rebuild", "verify"])
    projections.add_argument("--db", help="only this database")
    projections.set_defaults(run=_projections)
    audit = sub.add_parser("audit", help="verify the audit hash chains against the event store")
    audit.add_argument("action", choices=["verify"])
    audit.add_argument("--db", help="only this database's chain")
    audit.set_defaults(run=_audit)
    verify = sub.add_parser("verify", help="the read model and the history (folded from the "
                            "audit index) against the graph store")
    verify.add_argument("--db", help="only this database")
    verify.set_defaults(run=_verify)
    produce = sub.add_parser("produce", help="produce a command straight to its topic "
                             "(docs/topics.md), checked as intake checks it")
    produce.add_argument("command_type", help="e.g. CREATE_INSTANCE")
    produce.add_argument("data", help='the command\'s data as JSON, e.g. \'{"db": "shop", ...}\'')
    produce.add_argument("--actor", default="cli", help="recorded as the command's actor")
    produce.set_defaults(run=_produce)
    schema = sub.add_parser("schemas", help="the topic contract's JSON Schemas (list, or one)")
    schema.add_argument("name", nargs="?", help="e.g. command.CREATE_INSTANCE, event.INSTANCE_CREATED")
    schema.set_defaults(run=_schemas)
    config = sub.add_parser("config", help="every setting as this environment gives it "
                            "(secrets masked), checked against its bounds")
    config.add_argument("--markdown", action="store_true",
                        help="the reference table of defaults and bounds (docs/configuration.md)")
    config.set_defaults(run=_config)
    publish = sub.add_parser("publish", help="run the event-store publisher in this process")
    publish.add_argument("--start-after", help="position to start from when no checkpoint exists")
    publish.add_argument("--checkpoint-key", help="S3 key of the checkpoint (default from settings)")
    publish.set_defaults(run=_publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Errors end in one line on stderr and an exit code (EXIT_CODES), not a traceback;
    SPICE_DEBUG=1 shows the traceback too."""
    import os

    from spice.settings import SettingsError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "dlq" and args.action in ("show", "retry") and (
            args.topic is None or args.offset is None):
        parser.error(f"dlq {args.action} needs TOPIC and OFFSET")
    try:
        return int(args.run(args) or 0)
    except SettingsError as error:
        print(f"spice: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the operator gets the reason, not a traceback
        if os.environ.get("SPICE_DEBUG"):
            raise
        reason = str(error) if isinstance(error, RuntimeError) else f"{type(error).__name__}: {error}"
        print(f"spice: {reason}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
