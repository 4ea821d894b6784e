"""Pictures of a smart scan: the reconstruction, the measured points and the ERD, live or from the catalog.

`ScanPicture` is what a picture shows; `draw_scan` draws one on a matplotlib figure (the live view
and `plot_scan` share it); `plot_scan` draws a stored run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plans.streams import MAPS_STREAM

__all__ = ["ScanPicture", "draw_scan", "plot_scan", "axis_label"]


def axis_label(name: str, data_key: dict | None) -> str:
    """``name (units)``, or ``name`` where the data key gives no units."""
    units = (data_key or {}).get("units")
    return f"{name} ({units})" if units else name


@dataclass
class ScanPicture:
    """What a picture of a smart scan shows.

    Attributes
    ----------
    uid : str
    shape : (H, W)
    extents : ((y0, y1), (x0, x1))
    labels : (y label, x label, value label)
        Axis and colour-bar labels, with units where known.
    y, x, values : lists of float
        Stage position and steering value of each reading.
    reconstruction, erd : (H, W) arrays or None
        The newest maps.
    caption : str
        Progress and, at the end, why the scan stopped.
    """

    uid: str
    shape: tuple[int, int]
    extents: tuple
    labels: tuple[str, str, str] = ("y", "x", "value")
    y: list = field(default_factory=list)
    x: list = field(default_factory=list)
    values: list = field(default_factory=list)
    reconstruction: np.ndarray | None = None
    erd: np.ndarray | None = None
    caption: str = ""


def draw_scan(figure, picture: ScanPicture, truth: np.ndarray | None = None) -> None:
    """Draw ``picture`` on ``figure`` (cleared first): reconstruction, measured points, log ERD and, if
    given, the known image; every panel with axis labels in stage units and a colour bar."""
    figure.clf()
    panels = 4 if truth is not None else 3
    axes = figure.subplots(1, panels)
    (y0, y1), (x0, x1) = picture.extents
    extent = (x0, x1, y1, y0)
    y_label, x_label, value_label = picture.labels
    empty = np.full(picture.shape, np.nan)
    recon = picture.reconstruction if picture.reconstruction is not None else empty
    shown = [axes[0].imshow(recon, extent=extent, cmap="gray")]
    axes[0].set_title("reconstruction")
    if picture.values:
        shown.append(axes[1].scatter(picture.x, picture.y, c=picture.values, s=4, cmap="viridis", marker="s",
                                     linewidths=0))
        axes[1].plot(picture.x[-1], picture.y[-1], "r+", ms=10)
    else:
        shown.append(axes[1].imshow(empty, extent=extent, cmap="viridis"))
    axes[1].set_xlim(x0, x1)
    axes[1].set_ylim(y1, y0)
    axes[1].set_aspect("equal")
    axes[1].set_title(f"measured: {len(picture.values)} points")
    erd = picture.erd if picture.erd is not None else empty
    with np.errstate(divide="ignore", invalid="ignore"):
        log_erd = np.where(erd > 0, np.log10(np.where(erd > 0, erd, 1.0)), np.nan)  # measured pixels: blank
    shown.append(axes[2].imshow(log_erd, extent=extent, cmap="magma"))
    axes[2].set_title("predicted ERD")
    bar_labels = [value_label, value_label, "log10 ERD (intensity scale²)"]
    if truth is not None:
        shown.append(axes[3].imshow(truth, extent=extent, cmap="gray"))
        axes[3].set_title("truth")
        bar_labels.append(value_label)
    for ax, artist, bar_label in zip(axes, shown, bar_labels, strict=True):
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        figure.colorbar(artist, ax=ax, shrink=0.8, label=bar_label)
    figure.suptitle(f"smart_scan {picture.uid[:8]}: {picture.caption}")
    figure.tight_layout()


def _data_keys(run, stream: str) -> dict:
    """The data keys of a stored stream (empty where the catalog does not give them)."""
    try:
        return dict(run[stream].metadata.get("data_keys") or {})
    except (KeyError, AttributeError, TypeError):
        return {}


def plot_scan(run, *, truth: np.ndarray | None = None, path: str | Path | None = None, figure=None):
    """Draw a stored smart scan (``catalog.client[uid]``) as the live view drew it.

    A resumed run is drawn with the runs it continues (`read_scan`); the maps are the newest the
    run stored. With ``path`` the figure is saved there too.

    Parameters
    ----------
    run : tiled run client
    truth : 2-D array, optional
        The known image (simulations): a fourth panel.
    path : path, optional
        Where to save the figure (PNG, PDF, ... by suffix).
    figure : matplotlib Figure, optional
        Draw on this figure instead of a new one.

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    from plans.readback import read_scan

    data = read_scan(run)
    start = run.metadata["start"]
    (y_field,), _ = start["hints"]["dimensions"][0]
    (x_field,), _ = start["hints"]["dimensions"][1]
    keys = _data_keys(run, "primary")
    reduce = f" ({start.get('reduce', 'sum')})" if np.ndim(keys.get(start["value_field"], {}).get("shape")) else ""
    picture = ScanPicture(start["uid"], tuple(data.shape), data.extents,
                          (axis_label(y_field, keys.get(y_field)), axis_label(x_field, keys.get(x_field)),
                           axis_label(start["value_field"], keys.get(start["value_field"])) + reduce),
                          data.positions[:, 0].tolist(), data.positions[:, 1].tolist(), data.values.tolist())
    if MAPS_STREAM in set(run):
        maps = run[MAPS_STREAM].read()
        picture.reconstruction = np.asarray(maps["steering_maps_reconstruction"][-1], dtype=np.float64)
        picture.erd = np.asarray(maps["steering_maps_erd"][-1], dtype=np.float64)
    stop = run.metadata.get("stop") or {}
    n, total = int(np.isfinite(data.values).sum()), data.shape[0] * data.shape[1]
    picture.caption = (f"{n} points ({100 * n / total:.1f}%)"
                       + (f", {len(data.runs)} runs" if len(data.runs) > 1 else "")
                       + f" | {stop.get('reason') or stop.get('exit_status') or 'not closed'}")
    panels = 4 if truth is not None else 3
    figure = figure or plt.figure(figsize=(4.6 * panels, 4.4))
    draw_scan(figure, picture, truth)
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure
