"""Run the benchmarks, print one table, and write it as Markdown and JSON.

    python -m bench [--quick] [--only NAME[,NAME]] [--out DIR] [--no-n8n]

Every figure with a target says PASS or MISS beside it; a MISS does not fail the command (a
benchmark that cannot run says why in its section, and the command exits 1).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import trio

from bench import output, procs, report, suite
from bench.results import Section

DEFAULT_OUT = Path(__file__).parent


def names(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in suite.BENCHMARKS]
    if unknown:
        known = ", ".join(suite.BENCHMARKS)
        raise argparse.ArgumentTypeError(f"unknown: {', '.join(unknown)} (known: {known})")
    return chosen


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--only", type=names, action="extend", default=[], metavar="NAME[,NAME]",
        help=f"run only these (repeatable): {', '.join(suite.BENCHMARKS)}",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of results.md/json")
    parser.add_argument("--no-n8n", action="store_true", help="leave n8n out")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    started, load_at_start = datetime.now(UTC), suite.load_average()
    sections: list[Section] = []
    async with AsyncExitStack() as stack:
        lab = suite.Lab(stack, args.quick, with_n8n=not args.no_n8n)
        for name in args.only or list(suite.BENCHMARKS):
            print(f"running {name}…", file=sys.stderr, flush=True)
            sections.append(await suite.run_one(name, lab))
    context = suite.context(args.quick, started, load_at_start, lab)
    print(output.text(sections, context))
    for path in output.write(args.out, sections, context):
        print(f"wrote {path}")
    return 1 if any(section.error for section in sections) else 0


def main(argv: list[str] | None = None) -> int:
    procs.raise_fd_limit()  # 1,000 connections at once, here and in the servers started
    report.quiet_logs()
    return trio.run(run, parse(argv))


if __name__ == "__main__":
    sys.exit(main())
