"""Reading stored runs back: a `smart_scan` as pixels and values, a raster scan as an image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plans.smart_scan import grid_index
from steering.reconstruction import reconstruct_linear

__all__ = ["ScanData", "read_scan", "read_scan_journal", "read_raster"]


@dataclass
class ScanData:
    """One smart scan as stored: where it measured and what it saw.

    Attributes
    ----------
    shape : (H, W)
        The scan grid (slow axis first).
    extents : ((y_start, y_stop), (x_start, x_stop))
        Stage positions of the first and last grid points.
    points : (n, 2) int array
        Grid pixels (row, col) measured, in the order measured.
    positions : (n, 2) float array
        Stage readbacks (y, x) at each point.
    values : (n,) float array
        The steering value at each point (NaN where the measurement failed).
    stop_reason : str or None
        Why the scan ended (from the run's stop document).
    """

    shape: tuple[int, int]
    extents: tuple[tuple[float, float], tuple[float, float]]
    points: np.ndarray
    positions: np.ndarray
    values: np.ndarray
    stop_reason: str | None

    def reconstruct(self) -> np.ndarray:
        """The image on the full grid, linearly interpolated from the measured points."""
        ok = np.isfinite(self.values)
        return reconstruct_linear(self.shape, self.points[ok], self.values[ok])


def _scan_data(start: dict, stop: dict | None, column, where: str = "") -> ScanData:
    """`ScanData` from a smart_scan's start and stop documents and ``column(field)``, the primary
    stream's values of a field, one per event."""
    if start.get("plan_name") != "smart_scan":
        raise ValueError(f"run {start.get('uid')}{where} is a {start.get('plan_name')!r}, not a smart_scan")
    shape = tuple(int(n) for n in start["shape"])
    (y0, y1), (x0, x1) = start["extents"]
    (y_field,), _ = start["hints"]["dimensions"][0]
    (x_field,), _ = start["hints"]["dimensions"][1]
    ys = np.asarray(column(y_field), dtype=np.float64).reshape(-1)
    xs = np.asarray(column(x_field), dtype=np.float64).reshape(-1)
    raw = np.asarray(column(start["value_field"]), dtype=np.float64)
    values = raw.reshape(len(raw), -1).sum(axis=1) if raw.ndim > 1 else raw.reshape(-1)
    points = np.stack([grid_index(ys, y0, y1, shape[0]), grid_index(xs, x0, x1, shape[1])], axis=1)
    return ScanData(shape, ((y0, y1), (x0, x1)), points, np.stack([ys, xs], axis=1), values,
                    (stop or {}).get("reason"))


def read_scan(run) -> ScanData:
    """Read a `smart_scan` run from a tiled catalog (``catalog.client[uid]``).

    The steering value is the start document's ``value_field`` (a 2-D reading is summed).
    """
    table = None

    def column(field):
        nonlocal table
        if table is None:
            table = run["primary"].read()
        return table[field]

    return _scan_data(run.metadata["start"], run.metadata.get("stop"), column)


def read_scan_journal(path) -> ScanData:
    """Read a `smart_scan` run from its journal file (``{journal directory}/{uid}.jsonl``).

    The journal holds every point measured up to the moment the session ended, even one that was
    killed before the catalog got the last batch; ``smart_scan(..., resume_from=path)`` resumes
    from it.
    """
    from plans.storage import read_journal

    start, stop, primary = None, None, set()
    rows = []
    for name, doc in read_journal(path):
        if name == "start":
            start = doc
        elif name == "descriptor" and doc.get("name") == "primary":
            primary.add(doc["uid"])
        elif name == "event" and doc["descriptor"] in primary:
            rows.append(doc["data"])
        elif name == "stop":
            stop = doc
    if start is None:
        raise ValueError(f"{path} holds no start document: not a journal of a run")
    return _scan_data(start, stop, lambda field: [row[field] for row in rows], where=f" in {path}")


def read_raster(run, field: str | None = None) -> np.ndarray:
    """A stored 2-D raster scan (``bluesky.plans.grid_scan`` and the like) as an image, for tuning.

    The start document must give ``shape``, ``extents`` and ``hints.dimensions`` (bluesky's grid
    scans do); each event lands on the pixel nearest its motor readbacks, so snaking and event order
    do not matter.

    Parameters
    ----------
    run : tiled run client (``catalog.client[uid]``)
    field : str, optional
        The reading to image. Default: the start document's ``value_field`` if present, else the first
        detector's name.

    Raises
    ------
    ValueError
        If the run is not a 2-D grid, the field is missing, or a pixel of the grid was not measured.
    """
    start = run.metadata["start"]
    try:
        shape = tuple(int(n) for n in start["shape"])
        (y0, y1), (x0, x1) = start["extents"]
        (y_field,), _ = start["hints"]["dimensions"][0]
        (x_field,), _ = start["hints"]["dimensions"][1]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"run {start.get('uid')} is not a 2-D grid scan "
                         "(needs shape, extents and hints.dimensions)") from None
    if len(shape) != 2:
        raise ValueError(f"run {start.get('uid')} has shape {shape}, not 2-D")
    field = field or start.get("value_field") or (start.get("detectors") or [None])[0]
    table = run["primary"].read()
    if field not in table:
        raise ValueError(f"field {field!r} is not in the run's primary stream: {sorted(table.data_vars)}")
    raw = np.asarray(table[field], dtype=np.float64)
    values = raw.reshape(len(raw), -1).sum(axis=1) if raw.ndim > 1 else raw
    rows = grid_index(np.asarray(table[y_field], dtype=np.float64), y0, y1, shape[0])
    cols = grid_index(np.asarray(table[x_field], dtype=np.float64), x0, x1, shape[1])
    image = np.full(shape, np.nan)
    image[rows, cols] = values
    missing = int(np.isnan(image).sum())
    if missing:
        raise ValueError(f"run {start.get('uid')} leaves {missing} of {image.size} pixels unmeasured; "
                         "a reference for tuning must be a full raster")
    return image
