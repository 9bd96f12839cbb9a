"""``refrt analyze``: the static analysis from the command line.

    refrt analyze module:function --range x=-10:10:4x5 --range t=0:1:4x5 \\
        [--weight W=3x5] [--weights -1:1] [--json PATH]
    refrt analyze --benchmark

A ``--range NAME=LO:HI[:SHAPE]`` gives an input's box (SHAPE like ``4x5``; scalar when
left out); a ``--weight NAME=SHAPE[:LO:HI]`` declares a parameter input (its range is
``--weights``, DEBAR's -1:1 by default, unless given).  Every parameter of the function
needs one of the two.  The exit status is 1 when an unsafe op is confirmed (a witness
reaches its danger zone), 2 on bad arguments, else 0.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import sys


def register(sub):
    p = sub.add_parser("analyze", help="static analysis: prove unsafe ops safe over ranges "
                       "(DEBAR), or show where they break")
    p.add_argument("target", nargs="?", help="module:function or path/file.py:function")
    p.add_argument("--range", action="append", default=[], metavar="NAME=LO:HI[:SHAPE]")
    p.add_argument("--weight", action="append", default=[], metavar="NAME=SHAPE[:LO:HI]")
    p.add_argument("--weights", default="-1:1", metavar="LO:HI",
                   help="default range of --weight inputs (DEBAR's -1:1)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--partition", default="auto", choices=("auto", "expand", "smash"))
    p.add_argument("--relations", default="affine", choices=("affine", "none"))
    p.add_argument("--budget", type=float, default=1.0, help="tester seconds per alarm")
    p.add_argument("--no-confirm", action="store_true", help="skip the dynamic confirmation")
    p.add_argument("--json", default=None, metavar="PATH")
    p.add_argument("--benchmark", action="store_true",
                   help="the benchmark's ablation table over the six configurations")
    p.set_defaults(fn=main)


def _fail(msg):
    print(f"refrt analyze: {msg}", file=sys.stderr)
    return 2


def load(target):
    mod, sep, name = target.rpartition(":")
    if not sep or not mod or not name:
        raise ValueError(f"target expected module:function, got {target!r}")
    if mod.endswith(".py") or os.sep in mod:
        spec = importlib.util.spec_from_file_location(os.path.basename(mod)[:-3], mod)
        if spec is None:
            raise ValueError(f"cannot load {mod!r}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        module = importlib.import_module(mod)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ValueError(f"{mod} has no function {name!r}")
    return fn


def _shape(text):
    text = text.strip()
    if not text:
        return ()
    try:
        return tuple(int(s) for s in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"shape expected like 4x5, got {text!r}") from None


def _num(text, what):
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what} expected a number, got {text!r}") from None


def parse_inputs(fn, ranges, weights):
    from ..tester.inputs import Range
    from .analyze import Weight
    given = {}
    for spec in ranges:
        name, eq, rest = spec.partition("=")
        parts = rest.split(":")
        if not eq or len(parts) not in (2, 3):
            raise ValueError(f"--range expected NAME=LO:HI[:SHAPE], got {spec!r}")
        lo, hi = _num(parts[0], f"--range {name} low"), _num(parts[1], f"--range {name} high")
        given[name] = Range(lo, hi, _shape(parts[2]) if len(parts) == 3 else ())
    for spec in weights:
        name, eq, rest = spec.partition("=")
        parts = rest.split(":")
        if not eq or len(parts) not in (1, 3):
            raise ValueError(f"--weight expected NAME=SHAPE[:LO:HI], got {spec!r}")
        lo = hi = None
        if len(parts) == 3:
            lo, hi = _num(parts[1], f"--weight {name} low"), _num(parts[2], f"--weight {name} high")
        given[name] = Weight(_shape(parts[0]), lo, hi)
    names = [n for n, p in inspect.signature(fn).parameters.items()
             if p.default is inspect.Parameter.empty]
    missing = [n for n in names if n not in given]
    if missing:
        raise ValueError(f"inputs {missing} of {fn.__name__} need a --range or --weight")
    extra = [n for n in given if n not in names]
    if extra:
        raise ValueError(f"{fn.__name__} has no input(s) {extra}")
    return [given[n] for n in names]


def main(args):
    from .analyze import analyze
    if args.benchmark:
        from .benchmark import main as bench
        return bench()
    if not args.target:
        return _fail("a target module:function (or --benchmark) is required")
    try:
        fn = load(args.target)
        inputs = parse_inputs(fn, args.range, args.weight)
        lo, _, hi = args.weights.partition(":")
        weights = (_num(lo, "--weights low"), _num(hi, "--weights high"))
        rep = analyze(fn, *inputs, weights=weights, dtype=args.dtype,
                      partition=args.partition, relations=args.relations,
                      confirm=not args.no_confirm, budget=args.budget)
    except (ValueError, TypeError, ImportError) as err:
        return _fail(str(err))
    print(rep)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rep.to_dict(), fh, indent=1)
        print(f"wrote {args.json}")
    return 1 if rep.confirmed else 0
