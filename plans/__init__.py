"""Bluesky plans: the only layer that turns pixels into motor positions.

`smart_scan` is the plan; `Catalog` stores its runs (journal + tiled); `LiveSparseView` and
`BatchProgress` show them while they run; `read_scan` reads one back (`read_scan_journal` from its
journal), `read_raster` a raster scan.
"""

from plans.live_view import LiveSparseView
from plans.progress import BatchProgress
from plans.readback import ScanData, read_raster, read_scan, read_scan_journal
from plans.smart_scan import MAPS_STREAM, STEERING_STREAM, make_sampler, smart_scan
from plans.storage import Catalog, CatalogWriter, DocumentJournal, read_journal, replay_journal

__all__ = [
    "smart_scan", "make_sampler", "STEERING_STREAM", "MAPS_STREAM", "Catalog", "CatalogWriter", "DocumentJournal",
    "replay_journal", "read_journal", "read_scan", "read_scan_journal", "read_raster", "ScanData", "LiveSparseView",
    "BatchProgress",
]
