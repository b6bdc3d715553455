"""Command line: ``lidutils <group> <command> [options]``.

Commands are registered per group by small ``_add_<group>(subparsers)``
functions listed in ``COMMAND_GROUPS``; to add a group, write such a function
(it adds a sub-parser whose commands set ``func`` via ``set_defaults``) and
append it to the list. ``main`` returns the command's exit status.

Examples::

    lidutils zoo train --grid controlled --cache-dir /tmp/zoo --workers 2
    lidutils zoo design --grid controlled
    lidutils zoo summary --cache-dir /tmp/zoo --csv zoo.csv
    lidutils paper-tier dryrun dryrun/ --subjects 2 --images 200
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from lidutils.book.paper_tier import DRY_RUN_MODELS, dry_run
from lidutils.book.zoo import design_table, GRIDS, train_zoo, zoo_summary


def _zoo_train(args):
    table = train_zoo(grid=args.grid, cache_dir=args.cache_dir, device=args.device, data=args.data,
                      progress=not args.no_progress, num_threads=args.threads or None,
                      num_workers=args.workers)
    _print_table(table, args)
    return 0


def _zoo_design(args):
    table = design_table(args.grid)
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(table.to_string(index=False))
    print(f"\n{len(table)} design cells, {sum(len(s) for s in table['seeds'])} networks")
    return 0


def _zoo_summary(args):
    table = zoo_summary(args.cache_dir)
    if table.empty:
        print(f"no trained zoo networks under {args.cache_dir or 'the default cache'}", file=sys.stderr)
        return 1
    _print_table(table, args)
    return 0


def _print_table(table, args):
    cols = ["name", "epoch", "test_acc", "train_acc", "train_loss", "converged", "dead_fraction", "n_params",
            "examples_seen"]
    shown = table[[c for c in cols if c in table.columns]]
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    acc = table.loc[table["final"], "test_acc"] if "final" in table else table["test_acc"]
    print(f"\n{table['key'].nunique()} networks, {len(table)} checkpoints; final-epoch test accuracy "
          f"min {acc.min():.3f} / median {acc.median():.3f} / max {acc.max():.3f}")
    if getattr(args, "csv", None):
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")


def _add_zoo(sub):

    p = sub.add_parser("zoo", help="train and summarise the from-scratch model zoo")
    zsub = p.add_subparsers(dest="command", required=True)
    t = zsub.add_parser("train", help="train a named grid (cached: reruns train nothing already done)")
    t.add_argument("--grid", default="controlled", choices=sorted(GRIDS))
    t.add_argument("--data", default=None, choices=["fashion-mnist", "animal-mnist"],
                   help="training set (default: the grid's own)")
    t.add_argument("--workers", type=int, default=2,
                   help="training processes in parallel (default 2; each network stays bit-identical)")
    t.add_argument("--cache-dir", default=None, help="cache folder (default: ~/.cache/lidutils/zoo)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    t.add_argument("--threads", type=int, default=1,
                   help="CPU threads while training (default 1: deterministic; 0 = torch default)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--csv", default=None, help="also write the table to this CSV file")
    t.set_defaults(func=_zoo_train)
    d = zsub.add_parser("design", help="print a grid's design table (one row per design cell)")
    d.add_argument("--grid", default="controlled", choices=sorted(GRIDS))
    d.set_defaults(func=_zoo_design)
    s = zsub.add_parser("summary", help="table of every trained network and epoch in the cache")
    s.add_argument("--cache-dir", default=None)
    s.add_argument("--csv", default=None, help="also write the table to this CSV file")
    s.set_defaults(func=_zoo_summary)




def _paper_tier_dryrun(args):
    """The paper tier's dry run in one command (:func:`lidutils.book.paper_tier.dry_run`).

    Prints the members, the per-subject summary and the mean score per ROI, and the
    bundle's path; a second call reads the bundle back (nothing recomputed).
    """
    run = dry_run(args.workdir, n_subjects=args.subjects, n_images=args.images, models=args.models,
                  device=args.device)
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        print(run.members[["family", "n_params", "accuracy", "input_size", "dry_run"]])
        print(run.summary().to_string(index=False))
        print(run.brain.groupby("roi", sort=False)["score"].mean().round(4).to_string())
    print(f"tier: {run.meta['tier']} (stand-ins: never results); bundle: {Path(args.workdir) / 'bundle'}")
    return 0


def _add_paper_tier(sub):
    p = sub.add_parser("paper-tier", help="the paper tier: its dry run on stand-ins")
    psub = p.add_subparsers(dest="command", required=True)
    d = psub.add_parser("dryrun", help="dry run on stand-ins (untrained models, stand-in NSD data): "
                                       "writes WORKDIR/nsd, WORKDIR/cache, WORKDIR/bundle")
    d.add_argument("workdir")
    d.add_argument("--subjects", type=int, default=2, help="stand-in subjects (default 2)")
    d.add_argument("--images", type=int, default=200, help="training images per subject (default 200)")
    d.add_argument("--models", nargs="+", default=list(DRY_RUN_MODELS), help="paper models (timm names)")
    d.add_argument("--device", default="auto")
    d.set_defaults(func=_paper_tier_dryrun)


COMMAND_GROUPS = [_add_zoo, _add_paper_tier]


def build_parser():
    """The top-level ``argparse`` parser with every registered command group."""
    parser = argparse.ArgumentParser(prog="lidutils", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="group", required=True)
    for add in COMMAND_GROUPS:
        add(sub)
    return parser


def main(argv=None):
    """Entry point of the ``lidutils`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
