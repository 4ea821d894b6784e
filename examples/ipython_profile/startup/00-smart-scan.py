"""IPython startup for a simulated beamline session: ``bash examples/session.sh``
(``ipython --profile-dir=examples/ipython_profile`` with the project's ``.venv``).

Sets up what a beamline profile would: a RunEngine, the catalog runs are stored in (``catalog``;
``db`` is databroker's v1 ``Broker`` over it), the live view and progress lines, the (simulated)
microscope, and `smart_scan`. On a real instrument, replace the simulated microscope with the
beamline's ophyd devices (see ``devices/`` and ``examples/beamline_profile``) and point the catalog
at the facility's tiled server.
"""

import os

from bluesky import RunEngine

from plans import BatchProgress, Catalog, LiveSparseView, plot_scan, read_scan, smart_scan  # noqa: F401
from sim import SimulatedMicroscope

catalog = Catalog(os.environ.get("SMART_SCAN_CATALOG", "smart_scan_data"))
db = catalog.broker  # db[-1].table(), db[uid].start, ...; catalog.client[uid] is the tiled run

RE = RunEngine({})
RE.subscribe(catalog.writer)
RE.subscribe(BatchProgress(every=5))
RE.subscribe(LiveSparseView())

# 50 nm steps over the built-in sample; its readings are sim_det, sim_y, sim_x.
sim = SimulatedMicroscope(name="sim", pixel_size=0.05, velocity=20.0, settle_time=0.02, dwell=0.05)
y0, y1, x0, x1 = sim.extent()

print(f"""smart-scan session: catalog {catalog!r} (db: databroker Broker), simulated microscope 'sim' \
({sim.shape[0]}x{sim.shape[1]} pixels)
try:
    RE(smart_scan([sim.det], sim.y, {y0}, {y1:.2f}, {sim.shape[0]}, sim.x, {x0}, {x1:.2f}, {sim.shape[1]},
                  sampler={{"stop": {{"max_fraction": 0.2}}}}))
    db[-1].table()                                    # the points, as databroker v1 gives them
    run = catalog.client.values().last(); data = read_scan(run); image = data.reconstruct()
    plot_scan(run)                                    # the stored run, drawn as the live view drew it
""")
