"""Pictures of a smart scan: the reconstruction, the measured points and the ERD, live or from the catalog.

`ScanPicture` is what a picture shows; `draw_scan` draws one on a matplotlib figure (the live view
and `plot_scan` share it); `plot_scan` draws a stored run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plans.streams import MAPS_STREAM
from plans.values import measured_rows

__all__ = ["ScanPicture", "draw_scan", "plot_scan", "axis_label", "value_labels", "figure_size"]


def axis_label(name: str, data_key: dict | None) -> str:
    """``name (units)``, or ``name`` where the data key gives no units."""
    units = (data_key or {}).get("units")
    return f"{name} ({units})" if units else name


def value_labels(fields, data_keys: dict, reduce: str = "sum") -> tuple[str, ...]:
    """The colour-bar label of each steering field: `axis_label`, and how a 2-D reading was reduced."""
    fields = (fields,) if isinstance(fields, str) else tuple(fields)
    return tuple(axis_label(f, data_keys.get(f)) + (f" ({reduce})" if (data_keys.get(f) or {}).get("shape") else "")
                 for f in fields)


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
        The newest maps; a scan of several channels has a (C, H, W) reconstruction (the ERD is the
        channels' combined one).
    caption : str
        Progress and, at the end, why the scan stopped.
    channel_labels : tuple of str
        For a scan of several channels, each channel's colour-bar label (``values`` then holds a
        value per channel for each reading); empty for one.
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
    channel_labels: tuple[str, ...] = ()


def draw_scan(figure, picture: ScanPicture, truth: np.ndarray | None = None) -> None:
    """Draw ``picture`` on ``figure`` (cleared first): the reconstruction (one per channel), the measured
    points, log ERD and, if given, the known image (one per channel, on a second row for several);
    every panel with axis labels in stage units and a colour bar."""
    figure.clf()
    channels = max(1, len(picture.channel_labels))
    value_labels = picture.channel_labels or (picture.labels[2],)
    truths = [] if truth is None else list(np.asarray(truth, dtype=np.float64).reshape(-1, *picture.shape))
    columns = channels + 2 + (1 if truths and channels == 1 else 0)
    rows = 2 if truths and channels > 1 else 1
    axes = np.atleast_2d(figure.subplots(rows, columns, squeeze=False))
    (y0, y1), (x0, x1) = picture.extents
    extent = (x0, x1, y1, y0)
    y_label, x_label, _ = picture.labels
    empty = np.full(picture.shape, np.nan)
    recon = picture.reconstruction if picture.reconstruction is not None else np.stack([empty] * channels)
    recon = np.asarray(recon).reshape(channels, *picture.shape)
    panels = []  # (axes, artist, colour-bar label)
    for c in range(channels):
        ax = axes[0, c]
        panels.append((ax, ax.imshow(recon[c], extent=extent, cmap="gray"), value_labels[c]))
        ax.set_title("reconstruction" + (f": {value_labels[c]}" if channels > 1 else ""))
    ax = axes[0, channels]
    if picture.values:
        first = [np.ravel(v)[0] for v in picture.values]  # coloured by the (first) channel
        panels.append((ax, ax.scatter(picture.x, picture.y, c=first, s=4, cmap="viridis", marker="s",
                                      linewidths=0), value_labels[0]))
        ax.plot(picture.x[-1], picture.y[-1], "r+", ms=10)
    else:
        panels.append((ax, ax.imshow(empty, extent=extent, cmap="viridis"), value_labels[0]))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_aspect("equal")
    ax.set_title(f"measured: {len(picture.values)} points")
    erd = picture.erd if picture.erd is not None else empty
    with np.errstate(divide="ignore", invalid="ignore"):
        log_erd = np.where(erd > 0, np.log10(np.where(erd > 0, erd, 1.0)), np.nan)  # measured pixels: blank
    ax = axes[0, channels + 1]
    panels.append((ax, ax.imshow(log_erd, extent=extent, cmap="magma"), "log10 ERD (intensity scale²)"))
    ax.set_title("predicted ERD" + (" (channels combined)" if channels > 1 else ""))
    for c, image in enumerate(truths):
        ax = axes[1, c] if channels > 1 else axes[0, channels + 2]
        panels.append((ax, ax.imshow(image, extent=extent, cmap="gray"), value_labels[min(c, channels - 1)]))
        ax.set_title("truth" + (f": {value_labels[c]}" if channels > 1 else ""))
    for ax in axes.ravel()[len(panels):] if rows > 1 else ():
        ax.set_axis_off()
    for ax, artist, bar_label in panels:
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        figure.colorbar(artist, ax=ax, shrink=0.8, label=bar_label)
    figure.suptitle(f"smart_scan {picture.uid[:8]}: {picture.caption}")
    figure.tight_layout()


def figure_size(picture: ScanPicture, truth) -> tuple[float, float]:
    """A figure size that fits `draw_scan`'s panels of ``picture``."""
    channels = max(1, len(picture.channel_labels))
    columns = channels + 2 + (1 if truth is not None and channels == 1 else 0)
    return 4.6 * columns, 4.4 * (2 if truth is not None and channels > 1 else 1)


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
    truth : 2-D array (C x 2-D for several channels), optional
        The known image (simulations): a panel more (a row more for several channels).
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
    labels = value_labels(data.fields, keys, start.get("reduce", "sum"))
    picture = ScanPicture(start["uid"], tuple(data.shape), data.extents,
                          (axis_label(y_field, keys.get(y_field)), axis_label(x_field, keys.get(x_field)), labels[0]),
                          data.positions[:, 0].tolist(), data.positions[:, 1].tolist(), list(data.values),
                          channel_labels=labels if len(labels) > 1 else ())
    if MAPS_STREAM in set(run):
        maps = run[MAPS_STREAM].read()
        picture.reconstruction = np.asarray(maps["steering_maps_reconstruction"][-1], dtype=np.float64)
        picture.erd = np.asarray(maps["steering_maps_erd"][-1], dtype=np.float64)
    stop = run.metadata.get("stop") or {}
    n = int(measured_rows(data.values).sum())
    total = data.shape[0] * data.shape[1]
    picture.caption = (f"{n} points ({100 * n / total:.1f}%)"
                       + (f", {len(data.runs)} runs" if len(data.runs) > 1 else "")
                       + f" | {stop.get('reason') or stop.get('exit_status') or 'not closed'}")
    figure = figure or plt.figure(figsize=figure_size(picture, truth))
    draw_scan(figure, picture, truth)
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure
