"""More than one core, more than one machine: a local process pool, or an existing Dask
distributed cluster.  Both submit whole tasks and hand back their records as they
complete; the caller writes them to the store."""
from __future__ import annotations


def run_pool(groups, done, workers, over):
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from .runner import run_task
    left = 0
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending, it = set(), iter(groups)
        for g in it:
            pending.add(pool.submit(run_task, g))
            if len(pending) >= 2 * workers:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                done(f.result())
            for g in it:
                if over():
                    left += len(g) + sum(len(x) for x in it)
                    break
                pending.add(pool.submit(run_task, g))
                if len(pending) >= 2 * workers:
                    break
    return left


def run_dask(groups, done, address, over):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise SystemExit('refrt: --dask needs Dask distributed; install it with: pip install "refrt[dask]"')
    from .runner import run_task
    client = address if hasattr(address, "submit") else Client(address)
    try:
        futures = [client.submit(run_task, g, pure=False, retries=2) for g in groups]
        left = 0
        for fut in as_completed(futures):
            done(fut.result())
            if over():
                for f in futures:
                    if not f.done():
                        f.cancel()
                        left += 1
                break
        return left
    finally:
        if not hasattr(address, "submit"):
            client.close()
