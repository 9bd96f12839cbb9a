"""Interleaved round-robin median timer.

Machine noise (other processes, frequency changes, a neighbour on the same host) drifts
over seconds.  Timing variant A for a while and then variant B lets that drift land on
one of them; so each repeat runs every variant once, round-robin, and the reported
figure is the median over the repeats.  Each variant is first calibrated to a batch of
calls that lasts at least ``target`` seconds, so timer resolution and per-batch overhead
do not matter.  Method as in /work/shared/reference/perf_anchors.md (appendix).
"""
from __future__ import annotations

import statistics
import time


# The timer: wall time by default.  ``set_clock("thread")`` switches to the CPU time of
# the calling thread (time.thread_time), which on a saturated machine is far less
# distorted by descheduling; it does not count other threads' work, so it is only
# meaningful for 1-thread variants.
CLOCK = time.perf_counter


def set_clock(name):
    """"wall" (perf_counter, the default) or "thread" (thread_time)."""
    global CLOCK
    CLOCK = {"wall": time.perf_counter, "thread": time.thread_time}[name]


def calibrate(fn, target=0.05):
    """Number of calls so that one batch of ``fn()`` lasts at least ``target`` seconds."""
    n = 1
    while True:
        t0 = CLOCK()
        for _ in range(n):
            fn()
        dt = CLOCK() - t0
        if dt >= target:
            return n
        n = max(n * 2, int(n * target / max(dt, 1e-9) * 1.2))


def bench(variants, repeats=7, target=0.05):
    """Time ``variants`` = {name: (fn, pre)}; ``pre()`` (or None) runs before each batch
    of that variant, e.g. to set the thread count.  Returns
    {name: {"median", "min", "max", "n", "repeats"}} in seconds per call."""
    plan = {}
    for name, (fn, pre) in variants.items():
        if pre:
            pre()
        fn()                                  # warm-up: imports, page faults, caches
        plan[name] = calibrate(fn, target)
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, (fn, pre) in variants.items():
            if pre:
                pre()
            n = plan[name]
            t0 = CLOCK()
            for _ in range(n):
                fn()
            times[name].append((CLOCK() - t0) / n)
    return {name: dict(median=statistics.median(ts), min=min(ts), max=max(ts),
                       n=plan[name], repeats=repeats)
            for name, ts in times.items()}


def fmt_t(s):
    """Seconds as a short human string (ns / µs / ms / s)."""
    if s != s:
        return "-"
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"
