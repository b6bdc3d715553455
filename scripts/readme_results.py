#!/usr/bin/env python
"""Rewrite the README's table of offline-tier verdicts from the last build's records.

The table lies between the markers :data:`BEGIN` and :data:`END` of ``README.md``; every
number in it is read from ``results/C*.json`` (the files the claims page is built from), so
the README never quotes a result the book no longer shows. ``make book`` leaves the README
alone (a build does not edit tracked files); run this after a build and commit the change:

    python scripts/readme_results.py             # rewrite README.md from results/
    python scripts/readme_results.py --check     # exit 1 if README.md's table differs
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- results-table: written by scripts/readme_results.py from results/*.json; do not edit -->"
END = "<!-- /results-table -->"


def _analysis(row):
    """The analysis label without its population prefix (the population has its own column)."""
    a, pop = str(row["analysis"]), str(row["population"])
    return a[len(pop) + 2:] if a.startswith(pop + ": ") else a


def table(results_dir="results"):
    """Markdown table: one row per primary analysis (claim, population, analysis, r [CI], n,
    between-family r, the row's verdict, the claim's verdict on its first row)."""
    from lidutils.book import claims_page as cp
    from lidutils.book.report import fmt_ci, fmt_r

    claims = cp.read_claims(results_dir)
    if not claims:
        raise SystemExit(f"no results in {results_dir}: build the book first (make book)")
    rec = cp.records_table(claims)
    prim = rec.loc[rec["is_primary"] & ~rec["dry_run"].fillna(False).astype(bool)]
    lines = ["| claim | population | primary analysis | r [95 % CI], n | between families | verdict |",
             "|---|---|---|---|---|---|"]
    seen = set()
    for _, row in prim.iterrows():
        cid = row["claim"] + (" †" if row.get("beyond_paper") else "")
        verdict = str(row["verdict"])
        if row["claim"] not in seen and row["claim_verdict"] != row["verdict"]:
            verdict += f" (claim: **{row['claim_verdict']}**)"
        seen.add(row["claim"])
        rb = fmt_r(row.get("r_between"))
        lines.append(f"| {cid} | {row['population']} | {_analysis(row).replace('|', chr(92) + '|')} | "
                     f"{fmt_r(row['r'])} {fmt_ci(row['ci_low'], row['ci_high'])}, {int(row['n'])} | "
                     f"{rb} | {verdict} |")
    return "\n".join(lines)


def rewrite(text, new_table):
    pat = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.S)
    if not pat.search(text):
        raise SystemExit(f"README.md has no results table markers ({BEGIN} ... {END})")
    return pat.sub(lambda m: f"{BEGIN}\n{new_table}\n{END}", text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    readme = Path(args.readme)
    old = readme.read_text()
    new = rewrite(old, table(args.results))
    if args.check:
        if new != old:
            print("README.md's results table differs from the last build's records: run scripts/readme_results.py")
            return 1
        return 0
    if new != old:
        readme.write_text(new)
        print("README.md: results table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
