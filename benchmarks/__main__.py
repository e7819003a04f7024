"""``python -m benchmarks [--quick] [--only NAME ...] [--no-mosquitto]``: run, print, save."""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks import report, scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts (about a minute)")
    parser.add_argument(
        "--only", action="append", choices=sorted(scenarios.SCENARIOS), help="repeatable"
    )
    parser.add_argument("--no-save", action="store_true", help="do not write results/*.json")
    args = parser.parse_args(argv)
    sizes = scenarios.QUICK if args.quick else scenarios.FULL
    brokers = scenarios.reference_brokers()
    if scenarios.harness.mosquitto_path() is None:
        sys.stderr.write("mosquitto is not installed: its column is skipped\n")
    rows: list[scenarios.Row] = []
    for name in args.only or list(scenarios.SCENARIOS):
        t0 = time.monotonic()
        sys.stderr.write(f"running {name} ...\n")
        try:
            rows += scenarios.SCENARIOS[name](sizes, brokers)
        except Exception as exc:  # one broken scenario must not lose the others' figures
            rows.append(
                scenarios.row(name, "-", "error", None, "", note=f"{type(exc).__name__}: {exc}")
            )
        sys.stderr.write(f"  {name}: {time.monotonic() - t0:.1f}s\n")
    report.add_ratios(rows)
    print(report.table(rows))
    if not args.no_save:
        path = report.write_json(rows, {"quick": args.quick, "only": args.only})
        print(f"\nsaved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
