"""The thread the sampler thinks in, so that the RunEngine's loop (pause, Ctrl-C) stays responsive meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import bluesky.plan_stubs as bps

__all__ = ["in_sampler_thread", "start_in_sampler_thread", "result_of"]

_worker: ThreadPoolExecutor | None = None
_worker_lock = threading.Lock()


def _sampler_worker() -> ThreadPoolExecutor:
    """One thread for every scan of the session, not one per scan: each new thread gets a fresh malloc
    arena, and the resident memory of a session then grew by a few MiB per scan (measured in the soak test)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart_scan-sampler")
        return _worker


def in_sampler_thread(futures: list[Future], fn: Callable):
    """Plan stub: run ``fn()`` in the sampler's thread and return its result, the RunEngine waiting with `bps.wait_for`.

    The future is made once, so a replay after a pause waits on the same result instead of calling
    ``fn`` again. It is added to ``futures`` so that the scan can cancel what it left queued.
    """
    future = _sampler_worker().submit(fn)
    futures.append(future)
    yield from bps.wait_for([lambda: asyncio.wrap_future(future)])
    return future.result()


def start_in_sampler_thread(futures: list[Future], fn: Callable) -> Future:
    """Start ``fn()`` in the sampler's thread and return at once (the plan goes on moving and reading);
    `result_of` waits for it later. Calls queue in the one thread in the order they are started."""
    future = _sampler_worker().submit(fn)
    futures.append(future)
    return future


def result_of(future: Future):
    """Plan stub: the result of a future from `start_in_sampler_thread`, the RunEngine waiting with `bps.wait_for`."""
    if not future.done():
        yield from bps.wait_for([lambda: asyncio.wrap_future(future)])
    return future.result()
