"""The `spice` command line: the local stack, and operator tools."""
from __future__ import annotations

import argparse
import json
import sys


def _stack(args: argparse.Namespace) -> int:
    from spice.devstack import stack

    if args.action == "up":
        stack.up()
    elif args.action == "down":
        stack.down()
    else:
        states = stack.status()
        print(json.dumps(states, indent=2))
        return 0 if all(s.startswith("up") for s in states.values()) else 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spice", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    stack = sub.add_parser("stack", help="the local stack of real servers")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.set_defaults(run=_stack)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except RuntimeError as error:
        print(f"spice: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
