"""``python -m bench [ingest|e2e|all]`` (``make bench``)."""

from __future__ import annotations

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("which", nargs="?", default="all", choices=["ingest", "e2e", "all"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--orders", type=int, default=1200)
    parser.add_argument("--workers", type=int, default=8, help="worker processes (e2e)")
    parser.add_argument("--runs-per-worker", type=int, default=12, help="runs in flight each")
    parser.add_argument("--json", action="store_true", help="print the raw figures too")
    args = parser.parse_args()
    if args.which in ("ingest", "all"):
        from bench import ingest

        report = ingest.run(args.seconds, args.rate)
        ingest.print_report(report)
        if args.json:
            print(json.dumps(report, indent=2))
    if args.which in ("e2e", "all"):
        from bench import e2e

        report = e2e.run(args.orders, args.workers, args.runs_per_worker)
        e2e.print_report(report)
        if args.json:
            print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
