"""Bluesky plans: the only layer that turns pixels into motor positions.

`smart_scan` is the plan; `Catalog` stores its runs (journal + tiled); `LiveSparseView` and
`BatchProgress` show them while they run; `read_scan` reads one back (`read_scan_journal` from its
journal), `plot_scan` draws it, `read_raster` reads a raster scan. The names load on first use, so
a callback that only prints (``import plans.progress``) does not load bluesky's plans, ophyd or torch.
"""

from importlib import import_module as _import_module

__all__ = [
    "smart_scan", "make_sampler", "STEERING_STREAM", "MAPS_STREAM", "FAILURES_STREAM", "Catalog", "CatalogWriter",
    "DocumentJournal", "replay_journal", "read_journal", "read_scan", "read_scan_journal", "read_raster", "ScanData",
    "LiveSparseView", "BatchProgress", "plot_scan", "ScanGrid", "FailurePolicy",
]

_LAZY = {
    "smart_scan": "plans.scan", "make_sampler": "plans.sampler_settings", "STEERING_STREAM": "plans.streams",
    "MAPS_STREAM": "plans.streams", "FAILURES_STREAM": "plans.streams", "Catalog": "plans.storage",
    "CatalogWriter": "plans.storage", "DocumentJournal": "plans.storage", "replay_journal": "plans.storage",
    "read_journal": "plans.storage", "read_scan": "plans.readback", "read_scan_journal": "plans.readback",
    "read_raster": "plans.readback", "ScanData": "plans.readback", "LiveSparseView": "plans.live_view",
    "BatchProgress": "plans.progress", "plot_scan": "plans.plot", "ScanGrid": "plans.grid",
    "FailurePolicy": "plans.failures",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(_import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'plans' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
