"""Interleaved A/B of one benchmark between two revisions, in one run.

    python -m bench.ab --base REV [--head REV] --module bench.workers --rounds 2 [-- ARGS]

The host's speed moves 2-3x from hour to hour, so two figures measured apart say little;
A, B, A, B, ... on the same stack does. Each revision is checked out once (a git
worktree under .run/ab/) and its benchmark runs from there, on the local stack of this
checkout (SPICE_RUN_DIR: the same servers and credentials). Prints every figure line of
each run, then, per figure, the medians of A and B and their ratio B/A.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURE = re.compile(r"^(?P<name>[^:#][^:]*): (?P<value>[\d,.]+)(?:\s+(?:ms\b|\(runs))")


def checkout(rev: str) -> Path:
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    path = ROOT / ".run" / "ab" / commit
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=ROOT,
                       check=True, capture_output=True)
    return path


def run(path: Path, module: str, args: list[str]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(path), "SPICE_RUN_DIR": str(ROOT / ".run")}
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=path, env=env,
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{module} at {path.name} failed:\n{done.stderr[-2000:]}")
    figures = {}
    for line in done.stdout.splitlines():
        print(f"  {path.name}: {line}", flush=True)
        match = FIGURE.match(line)
        if match:
            figures[match["name"].strip()] = float(match["value"].replace(",", ""))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--head", default="HEAD")
    parser.add_argument("--module", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("args", nargs="*")
    options = parser.parse_args()
    sides = {"A": checkout(options.base), "B": checkout(options.head)}
    results: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for round_ in range(options.rounds):
        for side, path in sides.items():
            print(f"# round {round_ + 1}, {side} = {path.name}", flush=True)
            results[side].append(run(path, options.module, options.args))
    print(f"# {options.module}: A = {sides['A'].name}, B = {sides['B'].name}, "
          f"{options.rounds} rounds, medians")
    for name in results["A"][0]:
        a = statistics.median(r[name] for r in results["A"] if name in r)
        b = statistics.median(r[name] for r in results["B"] if name in r)
        print(f"{name}: A {a:,.1f}  B {b:,.1f}  B/A {b / a if a else float('nan'):.2f}")


if __name__ == "__main__":
    main()
