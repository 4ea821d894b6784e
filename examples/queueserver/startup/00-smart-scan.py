"""Startup code of the bluesky queue server's worker: ``bash examples/queueserver.sh``.

The worker runs this when its environment opens, then offers every plan and device defined here
(filtered by ``user_group_permissions.yaml``). It sets up what the IPython profiles do: a RunEngine
``RE`` writing to the catalog ``catalog`` (``SMART_SCAN_CATALOG``, default ``smart_scan_data``),
`smart_scan`, and the simulated microscope: ``sim`` (step scans: ``sim.det``, ``sim.y``, ``sim.x``,
its beam time ``sim.beam_time``) and ``fly_sim`` with its flyer ``flyer`` (a fast detector that
flies). With ``SMART_SCAN_IOC_PREFIX`` set (e.g. ``sim:``, with ``python -m sim.ioc --prefix sim:``
running, or a beamline's own prefix after editing the PV names below), the EPICS devices ``stage``
(``stage.y``, ``stage.x``), ``scaler`` and ``roi`` are connected as well.

A queue item then names devices by these names, all its arguments JSON, e.g.::

    BPlan("smart_scan", ["sim.det"], "sim.y", 0, 6.35, 128, "sim.x", 0, 6.35, 128,
          sampler={"stop": {"max_fraction": 0.2}}, beam_clock="sim.beam_time")
"""

import os

from bluesky import RunEngine

from plans import BatchProgress, Catalog, smart_scan  # noqa: F401  (smart_scan: the plan the queue offers)
from sim import SimulatedMicroscope
from steering.timing import StageTiming

catalog = Catalog(os.environ.get("SMART_SCAN_CATALOG", "smart_scan_data"))

RE = RunEngine({})
RE.subscribe(catalog.writer)
RE.subscribe(BatchProgress(every=5))

# 50 nm steps over the built-in 128x128 sample: grid 0..6.35 µm on both axes
sim = SimulatedMicroscope(name="sim", pixel_size=0.05, velocity=20.0, settle_time=0.02, dwell=0.05)
fly_sim = SimulatedMicroscope(name="fly_sim", timing=StageTiming(
    pixel_size=0.05, dwell=0.01, velocity=200.0, acceleration=2000.0, settle=0.02, line_overhead=0.3))
flyer = fly_sim.flyer

ioc_prefix = os.environ.get("SMART_SCAN_IOC_PREFIX")
if ioc_prefix:
    from devices import ROISumDetector, ScalerDetector, ScanStage

    stage = ScanStage(ioc_prefix, y_pv="m2", x_pv="m1", name="stage")
    scaler = ScalerDetector(ioc_prefix + "scaler1", channel=2, name="scaler")
    roi = ROISumDetector(ioc_prefix, cam="cam1:", roi="ROIStat1:1:", name="roi")
    for device in (stage, scaler, roi):
        device.wait_for_connection(timeout=10)


def exposures(microscope: str = "sim", start: int = 0) -> list:
    """Stage positions ``[y, x]`` of a simulated microscope's exposures, from the ``start``-th on.

    A function the queue can run (``BFunc("exposures")``): a point of a run measured twice shows as
    a position repeated within that run's exposures.
    """
    scope = {"sim": sim, "fly_sim": fly_sim}[microscope]
    return [list(position) for position in scope.det.exposures_[start:]]
