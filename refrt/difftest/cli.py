"""``refrt check`` (the campaign) and ``refrt report`` (the HTML report), registered into
``refrt.cli`` by ``register(subparsers)``."""
from __future__ import annotations

import difflib
import sys
import time

from . import adapters as A
from .classes import KINDS

FAIL_KINDS = KINDS + ("error", "any")


def _process_start() -> float:
    """perf_counter() value at this process's start (Linux /proc), else now: the
    budget of a `refrt check` run counts interpreter start-up and imports too."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
        import os
        return time.perf_counter() - max(0.0, up - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter()


_STARTED = _process_start()


class UsageError(Exception):
    """A bad name or value on the command line: exit 2 with the message, no traceback."""


def _names(value, valid, what, allow_prefix=()):
    if not value:
        return None
    out = []
    for n in (v.strip() for v in value.split(",")):
        if not n:
            continue
        if n in valid or any(n.startswith(p) for p in allow_prefix):
            out.append(n)
            continue
        near = difflib.get_close_matches(n, list(valid), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; valid: {', '.join(sorted(valid))}"
        raise UsageError(f"refrt check: unknown {what} {n!r}{hint}")
    return out


def register(sub):
    p = sub.add_parser("check", help="differential campaign: backends against the certified oracle (default)")
    p.add_argument("--backend", "--backends", default="",
                   help="comma list of " + ", ".join(A.BACKENDS) + ", module:<python.module> "
                   "(default: refrt,textbook,numpy plus torch and jax when installed)")
    p.add_argument("--op", "--ops", default="", help="comma list of registry ops (default: all)")
    p.add_argument("--dtype", "--dtypes", default="", help="comma list of float16,bfloat16,float32,float64")
    p.add_argument("--family", "--families", default="", help="comma list of input families")
    p.add_argument("--variant", default="", help="comma list of variants (axis=0, target=ids, ...; '' default)")
    p.add_argument("--seed", "--seeds", default="0", help="comma list of integer seeds (default 0)")
    p.add_argument("--semantics", default="native", help="native (framework defaults), spec (TorchLean's)")
    p.add_argument("--budget", default="60", help="seconds for the campaign (default 60; 0: no limit); "
                   "cases left when it runs out are reported, and --json PATH --resume runs them later")
    p.add_argument("--json", default="", metavar="PATH", help="write one JSON record per case (JSON Lines)")
    p.add_argument("--resume", action="store_true", help="skip the cases already in --json PATH")
    p.add_argument("--fail-on", default="", metavar="KINDS",
                   help="exit 1 when findings of these kinds exist (" + ",".join(FAIL_KINDS) + ")")
    p.add_argument("--workers", type=int, default=1,
                   help="local worker processes (default 1: each worker imports the frameworks "
                   "again, which a 60 s campaign on a shared 2-core machine cannot afford)")
    p.add_argument("--dask", default="", metavar="ADDRESS", help="a Dask scheduler address (tcp://host:8786)")
    p.add_argument("--show", type=int, default=5, help="reproducers printed (worst first; default 5)")
    p.set_defaults(fn=check_main)
    r = sub.add_parser("report", help="render a campaign's JSON Lines as one self-contained HTML file")
    r.add_argument("results", help="RESULTS.jsonl written by refrt check --json")
    r.add_argument("-o", "--output", default="report.html")
    r.set_defaults(fn=report_main)


def report_main(args):
    import os
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print('refrt report: the plots need matplotlib; install it with: pip install "refrt[plot]"',
              file=sys.stderr)
        return 2
    from .report import write_report
    if not os.path.exists(args.results):
        print(f"refrt report: no such file {args.results!r}", file=sys.stderr)
        return 2
    path, n = write_report(args.results, args.output)
    print(f"wrote {path} ({n} records)")
    return 0


def _selection(args):
    from ..registry import OPS
    from .cases import DTYPES, SEMANTICS, all_family_names, all_variant_names
    notes = []
    requested = _names(args.backend, A.BACKENDS, "backend", allow_prefix=("module:",))
    ops = _names(args.op, OPS, "op")
    asked = _names(args.dtype, DTYPES, "dtype")
    dtypes = asked or list(DTYPES)
    if "bfloat16" in dtypes:
        try:
            import ml_dtypes  # noqa: F401
        except ImportError:
            if asked:
                raise UsageError('refrt check: bfloat16 needs ml_dtypes; install it with: '
                                 'pip install "refrt[bfloat16]"')
            dtypes.remove("bfloat16")
            notes.append('bfloat16 not run: it needs ml_dtypes (pip install "refrt[bfloat16]")')
    families = _names(args.family, all_family_names(), "family")
    semantics = _names(args.semantics, SEMANTICS, "semantics") or ["native"]
    variants = None
    if args.variant:
        variants = [v.strip() for v in args.variant.split(",")]
        variants = ["" if v in ("''", '""', "default") else v for v in variants]
        _names(",".join(v for v in variants if v), all_variant_names(), "variant")
    try:
        seeds = [int(s) for s in args.seed.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"refrt check: --seed expected a comma list of integers, got {args.seed!r}")
    budget = None
    if args.budget:
        try:
            budget = float(args.budget)
        except ValueError:
            raise UsageError(f"refrt check: --budget expected seconds, got {args.budget!r}")
        if budget < 0 or budget != budget:
            raise UsageError(f"refrt check: --budget expected seconds >= 0 (0: no limit), got {args.budget!r}")
        budget = budget or None
    fail_on = _names(args.fail_on, FAIL_KINDS, "--fail-on kind") or []
    if args.resume and not args.json:
        raise UsageError("refrt check: --resume needs --json PATH (the store to resume)")
    if args.workers < 1:
        raise UsageError(f"refrt check: --workers expected an integer >= 1, got {args.workers}")
    requested = _names(args.backend, A.BACKENDS, "backend", allow_prefix=("module:",))
    if requested is None:
        backends = []
        for b in A.DEFAULT:
            try:
                A.load(b)
                backends.append(b)
            except A.MissingFramework as err:
                notes.append(f"{b} not installed (pip install \"refrt[{err.extra}]\"); not run")
    else:
        backends = requested
        for b in backends:
            try:
                A.load(b)
            except A.MissingFramework as err:
                raise UsageError(f"refrt check: {err}")
            except ImportError as err:
                raise UsageError(f"refrt check: backend {b!r}: {err}")
            except RuntimeError as err:
                raise UsageError(f"refrt check: {err}")
    return backends, ops, dtypes, families, seeds, semantics, variants, budget, fail_on, notes


def check_main(args):
    # the budget covers the whole command (start-up and framework imports included); a
    # long-lived process calling main() again counts from its call instead
    t0 = _STARTED if time.perf_counter() - _STARTED < 30 else time.perf_counter()
    try:
        sel = _selection(args)
    except UsageError as err:
        print(str(err), file=sys.stderr)
        return 2
    backends, ops, dtypes, families, seeds, semantics, variants, budget, fail_on, notes = sel
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from .runner import execute, plan
    from .store import Store
    from .summary import exit_status, print_summary
    console = Console(width=max(Console().width, 120))
    err_console = Console(stderr=True)
    cases = plan(backends, ops, dtypes, families, seeds, semantics, variants)
    if not cases:
        print("refrt check: the selection has no cases (no backend maps these ops/dtypes)", file=sys.stderr)
        return 2
    store = Store(args.json or None, args.resume)
    resumed = len(store.done & {c.key for c in cases})
    progress = Progress(TextColumn("[bold]refrt check"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("cases"), TimeRemainingColumn(), TextColumn("{task.description}"),
                        console=err_console, transient=True, disable=not err_console.is_terminal)
    try:
        with progress:
            task = progress.add_task("", total=len(cases), completed=resumed)

            def tick(rec):
                progress.update(task, advance=1, description=f"{rec['backend']} {rec['op']} {rec['dtype']}")
            # what is left of the budget once the frameworks are loaded, less ~4 s for the
            # tasks in flight and the summary
            left_s = None if budget is None else max(0.5, budget - (time.perf_counter() - t0) - 4.0)
            left = execute(cases, store, args.workers, args.dask or None, left_s, tick)
    finally:
        store.close()
    keys = {c.key for c in cases}
    records = [r for r in store.records if r["key"] in keys]
    print_summary(console, records, backends, time.perf_counter() - t0, left, notes, args.show,
                  resumed=resumed, path=args.json)
    return exit_status(records, fail_on)
