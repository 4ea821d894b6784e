"""A live picture of a `smart_scan`: reconstruction, measured points and ERD.

Bluesky's `LiveGrid` places points by sequence number, which is wrong for a sparse scan; this view
places each point at its stage position on the scan grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bluesky.callbacks.mpl_plotting import QtAwareCallback

from plans.smart_scan import MAPS_STREAM, STEERING_STREAM

__all__ = ["LiveSparseView"]


class LiveSparseView(QtAwareCallback):
    """Bluesky callback drawing a smart scan as it runs (matplotlib).

    With a display the figure updates after every sampler batch. Without one (a non-interactive
    backend), it is drawn once at the end of each run and saved as ``smart_scan_{uid8}.png`` in
    ``save_dir``; with ``save_dir`` set it is saved in either case.

    Parameters
    ----------
    save_dir : path, optional
        Directory for the PNG (default: the working directory when there is no display).
    truth : 2-D array, optional
        The known image (simulations): shown as a fourth panel.

    Attributes
    ----------
    figure : matplotlib Figure or None
        The current figure.
    saved_ : list of Path
        PNG files written so far.
    """

    def __init__(self, save_dir: str | Path | None = None, *, truth=None, **kwargs):
        super().__init__(use_teleporter=kwargs.pop("use_teleporter", None), **kwargs)
        self.save_dir = None if save_dir is None else Path(save_dir)
        self.truth = None if truth is None else np.asarray(truth, dtype=np.float64)
        self.figure = None
        self.saved_: list[Path] = []
        self._run = None

    @staticmethod
    def _interactive() -> bool:
        import matplotlib

        return matplotlib.get_backend().lower() not in {"agg", "pdf", "ps", "svg", "cairo", "template"}

    def start(self, doc):
        self._run = None
        if doc.get("plan_name") != "smart_scan":
            return
        (y_field,), _ = doc["hints"]["dimensions"][0]
        (x_field,), _ = doc["hints"]["dimensions"][1]
        self._run = {
            "uid": doc["uid"], "shape": tuple(doc["shape"]), "extents": doc["extents"],
            "fields": (y_field, x_field, doc["value_field"]), "streams": {},
            "y": [], "x": [], "v": [], "recon": None, "erd": None, "label": "",
        }
        if self._interactive():
            self._draw()

    def descriptor(self, doc):
        if self._run is not None:
            self._run["streams"][doc["uid"]] = doc.get("name")

    def event(self, doc):
        run = self._run
        if run is None:
            return
        stream = run["streams"].get(doc["descriptor"])
        data = doc["data"]
        if stream == "primary":
            y_field, x_field, v_field = run["fields"]
            run["y"].append(data.get(y_field, np.nan))
            run["x"].append(data.get(x_field, np.nan))
            v = np.asarray(data.get(v_field, np.nan), dtype=np.float64)
            run["v"].append(float(v.sum()) if v.ndim else float(v))
        elif stream == MAPS_STREAM:
            run["recon"] = np.asarray(data["steering_maps_reconstruction"], dtype=np.float64)
            run["erd"] = np.asarray(data["steering_maps_erd"], dtype=np.float64)
        elif stream == STEERING_STREAM:
            run["label"] = f"{data['steering_n_measured']} points ({100 * data['steering_fraction']:.1f}%)"
            if self._interactive():
                self._draw()

    def stop(self, doc):
        run = self._run
        if run is None:
            return
        run["label"] += f" | {doc.get('reason') or doc.get('exit_status')}"
        self._draw()
        if self.save_dir is not None or not self._interactive():
            folder = self.save_dir or Path.cwd()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"smart_scan_{run['uid'][:8]}.png"
            self.figure.savefig(path, dpi=110)
            self.saved_.append(path)

    def _draw(self) -> None:
        import matplotlib.pyplot as plt

        run = self._run
        (y0, y1), (x0, x1) = run["extents"]
        extent = (x0, x1, y1, y0)
        panels = 4 if self.truth is not None else 3
        if self.figure is None or not plt.fignum_exists(self.figure.number):
            self.figure = plt.figure(figsize=(4.2 * panels, 4.4))
        fig = self.figure
        fig.clf()
        axes = fig.subplots(1, panels)
        empty = np.full(run["shape"], np.nan)
        recon = run["recon"] if run["recon"] is not None else empty
        axes[0].imshow(recon, extent=extent, cmap="gray")
        axes[0].set_title("reconstruction")
        axes[1].imshow(empty, extent=extent, cmap="gray")
        if run["v"]:
            axes[1].scatter(run["x"], run["y"], c=run["v"], s=4, cmap="viridis", marker="s", linewidths=0)
            axes[1].plot(run["x"][-1], run["y"][-1], "r+", ms=10)
        axes[1].set_xlim(x0, x1)
        axes[1].set_ylim(y1, y0)
        axes[1].set_title(f"measured: {len(run['v'])} points")
        erd = run["erd"] if run["erd"] is not None else empty
        with np.errstate(divide="ignore"):
            shown = np.where(erd > 0, np.log10(np.where(erd > 0, erd, 1.0)), np.nan)  # measured pixels: blank
        axes[2].imshow(shown, extent=extent, cmap="magma")
        axes[2].set_title("ERD (log10)")
        if self.truth is not None:
            axes[3].imshow(self.truth, extent=extent, cmap="gray")
            axes[3].set_title("truth")
        for ax in axes:
            ax.set_xlabel("x")
        axes[0].set_ylabel("y")
        fig.suptitle(f"smart_scan {run['uid'][:8]}: {run['label']}")
        fig.tight_layout()
        if self._interactive():
            fig.canvas.draw_idle()
            fig.canvas.flush_events()
