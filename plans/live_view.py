"""A live picture of a `smart_scan`: reconstruction, measured points and ERD.

Bluesky's `LiveGrid` places points by sequence number, which is wrong for a sparse scan; this view
places each point at its stage position on the scan grid. `plans.plot.plot_scan` draws a stored
run the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bluesky.callbacks.mpl_plotting import QtAwareCallback

from plans.plot import ScanPicture, axis_label, draw_scan, figure_size, value_labels
from plans.streams import MAPS_STREAM, STEERING_STREAM
from plans.values import reduce_reading

__all__ = ["LiveSparseView"]


class LiveSparseView(QtAwareCallback):
    """Bluesky callback drawing a smart scan as it runs (matplotlib).

    With a display the figure updates after every sampler batch. Without one (a non-interactive
    backend), it is drawn once at the end of each run and saved as ``smart_scan_{uid8}.png`` in
    ``save_dir``; with ``save_dir`` set it is saved in either case. A 2-D reading is reduced to
    the steering value as the run's start document says (``reduce``).

    Parameters
    ----------
    save_dir : path, optional
        Directory for the PNG (default: the working directory when there is no display).
    truth : 2-D array, optional
        The known image (simulations): shown as a panel more; for a scan of several channels, a
        (C, H, W) stack, one panel per channel on a second row.

    Attributes
    ----------
    figure : matplotlib Figure or None
        The current figure.
    picture : plans.plot.ScanPicture or None
        What the figure shows of the current (or last) run.
    saved_ : list of Path
        PNG files written so far.
    """

    def __init__(self, save_dir: str | Path | None = None, *, truth=None, **kwargs):
        super().__init__(use_teleporter=kwargs.pop("use_teleporter", None), **kwargs)
        self.save_dir = None if save_dir is None else Path(save_dir)
        self.truth = None if truth is None else np.asarray(truth, dtype=np.float64)
        self.figure = None
        self.saved_: list[Path] = []
        self.picture: ScanPicture | None = None
        self._fields: tuple[str, str, str] = ("", "", "")  # y, x, steering value
        self._reduce = "sum"
        self._streams: dict[str, str] = {}

    @staticmethod
    def _interactive() -> bool:
        import matplotlib

        return matplotlib.get_backend().lower() not in {"agg", "pdf", "ps", "svg", "cairo", "template"}

    def start(self, doc):
        self.picture = None
        if doc.get("plan_name") != "smart_scan":
            return
        (y_field,), _ = doc["hints"]["dimensions"][0]
        (x_field,), _ = doc["hints"]["dimensions"][1]
        steering = doc["value_field"] if isinstance(doc["value_field"], str) else tuple(doc["value_field"])
        self._fields, self._reduce = (y_field, x_field, steering), doc.get("reduce", "sum")
        self._streams = {}
        self.picture = ScanPicture(doc["uid"], tuple(doc["shape"]), doc["extents"])
        if self._interactive():
            self._draw()

    def descriptor(self, doc):
        if self.picture is None:
            return
        self._streams[doc["uid"]] = doc.get("name")
        if doc.get("name") == "primary":
            (y_field, x_field, v_field), keys = self._fields, doc.get("data_keys", {})
            labels = value_labels(v_field, keys, self._reduce)
            self.picture.labels = (axis_label(y_field, keys.get(y_field)), axis_label(x_field, keys.get(x_field)),
                                   labels[0])
            self.picture.channel_labels = labels if len(labels) > 1 else ()

    def event(self, doc):
        picture = self.picture
        if picture is None:
            return
        stream = self._streams.get(doc["descriptor"])
        data = doc["data"]
        if stream == "primary":
            y_field, x_field, v_field = self._fields
            picture.y.append(data.get(y_field, np.nan))
            picture.x.append(data.get(x_field, np.nan))
            fields = (v_field,) if isinstance(v_field, str) else v_field
            value = [reduce_reading(data.get(f, np.nan), self._reduce) for f in fields]
            picture.values.append(value[0] if isinstance(v_field, str) else np.array(value))
        elif stream == MAPS_STREAM:
            picture.reconstruction = np.asarray(data["steering_maps_reconstruction"], dtype=np.float64)
            picture.erd = np.asarray(data["steering_maps_erd"], dtype=np.float64)
        elif stream == STEERING_STREAM:
            picture.caption = f"{data['steering_n_measured']} points ({100 * data['steering_fraction']:.1f}%)"
            if self._interactive():
                self._draw()

    def stop(self, doc):
        picture = self.picture
        if picture is None:
            return
        picture.caption += f" | {doc.get('reason') or doc.get('exit_status')}"
        self._draw()
        if self.save_dir is not None or not self._interactive():
            folder = self.save_dir or Path.cwd()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"smart_scan_{picture.uid[:8]}.png"
            self.figure.savefig(path, dpi=110)
            self.saved_.append(path)

    def _draw(self) -> None:
        import matplotlib.pyplot as plt

        if self.figure is None or not plt.fignum_exists(self.figure.number):
            self.figure = plt.figure(figsize=figure_size(self.picture, self.truth))
        draw_scan(self.figure, self.picture, self.truth)
        if self._interactive():
            self.figure.canvas.draw_idle()
            self.figure.canvas.flush_events()
