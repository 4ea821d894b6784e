"""Reading stored runs back: a `smart_scan` as pixels and values, a raster scan as an image."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from plans.grid import ScanGrid
from plans.streams import FAILURES_STREAM, STEERING_STREAM, StreamRouter
from plans.values import reduce_rows, steering_rows
from steering.reconstruction import reconstruct_linear

__all__ = ["ScanData", "read_scan", "read_scan_journal", "read_raster"]

logger = logging.getLogger(__name__)


@dataclass
class ScanData:
    """One smart scan as stored (with the runs it continues): where it measured and what it saw.

    Attributes
    ----------
    shape : (H, W)
        The scan grid (slow axis first).
    extents : ((y_start, y_stop), (x_start, x_stop))
        Stage positions of the first and last grid points.
    points : (n, 2) int array
        Grid pixels (row, col) read, in the order read (a reading that failed and was retried
        appears once per try).
    positions : (n, 2) float array
        Stage readbacks (y, x) at each point.
    values : (n,) float array, or (n, C) for a scan that steered on C fields
        The steering value of each reading: the ``value_field``, reduced as the scan reduced it
        (``reduce``); NaN where the reading was not a number.
    stop_reason : str or None
        Why the (last) scan ended, from its stop document.
    reduce : str
        How a 2-D reading became the steering value (``"sum"``, ``"mean"`` or ``"max"``).
    batches : (n,) int array or None
        The sampler batch each reading belongs to, numbered as in the ``steering`` stream (1: the
        initial pattern); None for runs written before batches were recorded.
    probes : (n,) bool array
        Whether each point was a random probe.
    failed : (m, 2) int array
        Pixels that could not be measured (no reading, or none that was a number), one row per
        failure, from the ``steering_failures`` stream.
    runs : list of str
        The uids of the runs read, the earliest first: a resumed scan is read with the runs it
        continues (``resumed_from``).
    beam_time : float or None
        Beam time the scan has spent, as its last batch reported.
    incomplete : list of str
        For each run read that may lack points, why: a run in the catalog that was never closed (its
        session died and ``catalog.recover()`` has not been run) or holds fewer events than its stop
        document counts, a journal that a live session is still writing. Empty when the scan is whole.
    fields : tuple of str
        The steering field(s), one per column of ``values`` when there are several.
    """

    shape: tuple[int, int]
    extents: tuple[tuple[float, float], tuple[float, float]]
    points: np.ndarray
    positions: np.ndarray
    values: np.ndarray
    stop_reason: str | None
    reduce: str = "sum"
    batches: np.ndarray | None = None
    probes: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    failed: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    runs: list[str] = field(default_factory=list)
    beam_time: float | None = None
    incomplete: list[str] = field(default_factory=list)
    fields: tuple[str, ...] = ()

    def reconstruct(self) -> np.ndarray:
        """The image on the full grid, linearly interpolated from the measured points: (H, W), or
        (C, H, W) for a scan of C fields, each from the points where it was a number."""
        images = []
        for v in (self.values[:, None] if self.values.ndim == 1 else self.values).T:
            ok = np.isfinite(v)
            images.append(reconstruct_linear(self.shape, self.points[ok], v[ok]))
        return images[0] if self.values.ndim == 1 else np.stack(images)

    def then(self, later: ScanData) -> ScanData:
        """This scan followed by ``later``, a run that resumed it: one `ScanData` for the whole scan."""
        if tuple(later.shape) != tuple(self.shape) or not np.allclose(later.extents, self.extents):
            raise ValueError(f"run {later.runs[-1:]} does not continue {self.runs[-1:]}: another grid")
        if later.fields != self.fields:
            raise ValueError(f"run {later.runs[-1:]} steers on {list(later.fields)}, the run it continues on "
                             f"{list(self.fields)}")
        batches = None if self.batches is None or later.batches is None else np.concatenate([self.batches,
                                                                                              later.batches])
        return replace(later, points=np.concatenate([self.points, later.points]),
                       positions=np.concatenate([self.positions, later.positions]),
                       values=np.concatenate([self.values, later.values]), batches=batches,
                       probes=np.concatenate([self.probes, later.probes]),
                       failed=np.concatenate([self.failed, later.failed]), runs=self.runs + later.runs,
                       incomplete=self.incomplete + later.incomplete,
                       beam_time=later.beam_time if later.beam_time is not None else self.beam_time)


def _scan_data(start: dict, stop: dict | None, column, where: str = "") -> ScanData:
    """`ScanData` of one run from its start and stop documents and ``column(stream, field)``, the
    values of a field in a stream, one per event (None where the stream or field is missing)."""
    if start.get("plan_name") != "smart_scan":
        raise ValueError(f"run {start.get('uid')}{where} is a {start.get('plan_name')!r}, not a smart_scan")
    grid = ScanGrid(start["shape"], start["extents"])
    (y_field,), _ = start["hints"]["dimensions"][0]
    (x_field,), _ = start["hints"]["dimensions"][1]
    reduce = start.get("reduce", "sum")
    steering = start["value_field"] if isinstance(start["value_field"], str) else tuple(start["value_field"])
    ys, xs = (column("primary", name) for name in (y_field, x_field))
    if ys is None:  # no point was read
        ys = xs = np.zeros(0)
        values = np.zeros((0,) if isinstance(steering, str) else (0, len(steering)))
    else:
        values = steering_rows(lambda name: column("primary", name), steering, reduce)
    ys, xs = np.asarray(ys, np.float64).reshape(-1), np.asarray(xs, np.float64).reshape(-1)
    batches = column("primary", "sampler_batch")
    probes = column("primary", "sampler_probe")
    rows, cols = column(FAILURES_STREAM, "steering_failures_row"), column(FAILURES_STREAM, "steering_failures_col")
    beam = column(STEERING_STREAM, "steering_beam_time")
    return ScanData(
        grid.shape, grid.extents, grid.pixels(ys, xs), np.stack([ys, xs], axis=1).reshape(-1, 2), values,
        (stop or {}).get("reason"), reduce=reduce,
        batches=None if batches is None or not len(ys) else np.asarray(batches, dtype=np.int64).reshape(-1),
        probes=np.zeros(len(ys), bool) if probes is None else np.asarray(probes, dtype=bool).reshape(-1),
        failed=np.zeros((0, 2), np.int64) if rows is None else np.stack([np.asarray(rows, np.int64),
                                                                         np.asarray(cols, np.int64)], axis=1),
        runs=[start["uid"]], beam_time=float(np.asarray(beam)[-1]) if beam is not None and len(beam) else None,
        fields=(steering,) if isinstance(steering, str) else steering)


def read_scan(run, *, earlier: bool = True) -> ScanData:
    """Read a `smart_scan` run from a tiled catalog (``catalog.client[uid]``).

    Parameters
    ----------
    run : tiled run client
    earlier : bool
        A run that resumed another (``resumed_from`` in its start document) is read together with
        the runs it continues, from the same catalog, the earliest first. False: this run alone.
    """
    tables: dict[str, object] = {}
    streams = set(run)

    def column(stream: str, name: str):
        if stream not in streams:
            return None
        if stream not in tables:
            tables[stream] = run[stream].read()
        table = tables[stream]
        return np.asarray(table[name]) if name in table else None

    start, stop = run.metadata["start"], run.metadata.get("stop")
    data = _scan_data(start, stop, column)
    counted = (stop or {}).get("num_events", {}).get("primary", 0)
    if not stop:
        data.incomplete.append(f"run {start['uid']} was never closed (no stop document: its session died)")
    elif counted != len(data.points):
        data.incomplete.append(f"run {start['uid']} holds {len(data.points)} of the {counted} points it measured")
    parent = start.get("resumed_from")
    if not earlier or not parent:
        return data
    try:
        before = run.parent[parent]
    except (KeyError, TypeError, AttributeError):
        logger.warning("run %s continues run %s, which is not in this catalog: read alone", start["uid"], parent)
        return data
    return read_scan(before).then(data)


class _JournalRows(StreamRouter):
    """Start and stop documents and the rows of every stream, from a journal's documents."""

    def __init__(self) -> None:
        super().__init__()
        self.start_doc: dict | None = None
        self.stop_doc: dict | None = None
        self.rows: dict[str, list[dict]] = {}

    def start(self, doc: dict) -> None:
        self.start_doc = doc

    def stop(self, doc: dict) -> None:
        self.stop_doc = doc

    def stream_event(self, stream: str | None, doc: dict) -> None:
        self.rows.setdefault(stream, []).append(doc["data"])


def read_scan_journal(path, *, earlier: bool = True) -> ScanData:
    """Read a `smart_scan` run from its journal file (``{journal directory}/{uid}.jsonl``).

    The journal holds every point measured up to the moment the session ended, even one that was
    killed before the catalog got the last batch; ``smart_scan(..., resume_from=path)`` resumes
    from it. With ``earlier``, the journals of the runs it continues (in the same directory) are
    read too, the earliest first.
    """
    from plans.storage import journal_in_use, read_journal

    reader = _JournalRows()
    for name, doc in read_journal(path):
        reader(name, doc)
    if reader.start_doc is None:
        raise ValueError(f"{path} holds no start document: not a journal of a run")

    def column(stream: str, name: str):
        rows = reader.rows.get(stream)
        if not rows or name not in rows[0]:
            return None
        return [row[name] for row in rows]

    data = _scan_data(reader.start_doc, reader.stop_doc, column, where=f" in {path}")
    if reader.stop_doc is None and journal_in_use(path):
        data.incomplete.append(f"journal {path} is still being written by a live session")
    parent = reader.start_doc.get("resumed_from")
    if not earlier or not parent:
        return data
    before = Path(path).with_name(f"{parent}.jsonl")
    if not before.is_file():
        logger.warning("journal %s continues run %s, whose journal is not beside it: read alone", path, parent)
        return data
    return read_scan_journal(before).then(data)


def read_raster(run, field: str | None = None) -> np.ndarray:
    """A stored 2-D raster scan (``bluesky.plans.grid_scan`` and the like) as an image, for tuning.

    The start document must give ``shape``, ``extents`` and ``hints.dimensions`` (bluesky's grid
    scans do); each event lands on the pixel nearest its motor readbacks, so snaking and event order
    do not matter. A 2-D reading is reduced as the start document's ``reduce`` says (default: summed).

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
        grid = ScanGrid(start["shape"], start["extents"])
        (y_field,), _ = start["hints"]["dimensions"][0]
        (x_field,), _ = start["hints"]["dimensions"][1]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"run {start.get('uid')} is not a 2-D grid scan "
                         "(needs shape, extents and hints.dimensions)") from None
    field = field or start.get("value_field") or (start.get("detectors") or [None])[0]
    table = run["primary"].read()
    if field not in table:
        raise ValueError(f"field {field!r} is not in the run's primary stream: {sorted(table.data_vars)}")
    values = reduce_rows(table[field], start.get("reduce", "sum"))
    pixels = grid.pixels(np.asarray(table[y_field], dtype=np.float64), np.asarray(table[x_field], dtype=np.float64))
    image = np.full(grid.shape, np.nan)
    image[pixels[:, 0], pixels[:, 1]] = values
    missing = int(np.isnan(image).sum())
    if missing:
        raise ValueError(f"run {start.get('uid')} leaves {missing} of {image.size} pixels unmeasured; "
                         "a reference for tuning must be a full raster")
    return image
