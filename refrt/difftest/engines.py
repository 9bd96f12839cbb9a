"""More than one core, more than one machine: a local process pool, or an existing Dask
distributed cluster.  Both submit whole tasks and hand back their records as they
complete; the caller writes them to the store."""
from __future__ import annotations


def run_pool(groups, done, workers, over, deadline=None):
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from .runner import run_task
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending, it = {}, iter(groups)

        def fill():
            for g in it:
                pending[pool.submit(run_task, g, deadline)] = g
                if len(pending) >= workers + 1:
                    return

        fill()
        while pending:
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for f in finished:
                pending.pop(f)
                done(f.result())
            if over():
                # the budget is spent: drop what has not started, finish what has
                for f in list(pending):
                    if f.cancel():
                        pending.pop(f)
                continue
            fill()


def run_dask(groups, done, address, over, deadline=None):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise SystemExit('refrt: --dask needs Dask distributed; install it with: pip install "refrt[dask]"')
    from .runner import run_task
    client = address if hasattr(address, "submit") else Client(address)
    try:
        futures = [client.submit(run_task, g, deadline, pure=False, retries=2) for g in groups]
        for fut in as_completed(futures):
            done(fut.result())
            if over():
                for f in futures:
                    if not f.done():
                        f.cancel()
                break
    finally:
        if not hasattr(address, "submit"):
            client.close()
