"""IPython startup for a beamline: ``bash examples/session.sh beamline`` (IPython with this profile).

Copy this file into the beamline's own profile and edit the PV names below; nothing in the package
is tied to one beamline. As shipped, the names match the simulated IOC, so it can be tried against
``python -m sim.ioc --prefix sim:`` running in another terminal (with, in both terminals,
``export EPICS_CA_AUTO_ADDR_LIST=NO EPICS_CA_ADDR_LIST=127.0.0.1``).

Example names at a hard-X-ray nanoprobe (illustrative, check the beamline's IOCs)::

    stage = ScanStage("26idcnpi:", y_pv="m18", x_pv="m17", name="stage")
    scaler = ScalerDetector("26idc:3820:scaler1", channel=3, name="scaler")
    roi = ROISumDetector("26idcPIL:", cam="cam1:", roi="ROIStat1:1:", name="roi")
"""

import os

from bluesky import RunEngine

from devices import MCSFlyer, ROISumDetector, ScalerDetector, ScanStage
from plans import BatchProgress, Catalog, LiveSparseView, plot_scan, read_scan, smart_scan  # noqa: F401
from steering.timing import StageTiming

# --- the instrument: edit these PV names -------------------------------------------------------
STAGE_PREFIX, Y_MOTOR, X_MOTOR = "sim:", "m2", "m1"  # motor records {prefix}{name}
SCALER = "sim:scaler1"  # scaler record; the signal on channel 2 (.S2)
MCS_PREFIX = "sim:mcs:"  # multichannel scaler (EPICS mca module, SIS3820): mca2 the signal, mca3 the x encoder
DETECTOR_PREFIX = "sim:"  # areaDetector IOC; driver cam1:, ROI statistics ROIStat1:1:

stage = ScanStage(STAGE_PREFIX, y_pv=Y_MOTOR, x_pv=X_MOTOR, name="stage")
scaler = ScalerDetector(SCALER, channel=2, name="scaler")
roi = ROISumDetector(DETECTOR_PREFIX, cam="cam1:", roi="ROIStat1:1:", name="roi")
# Fly scans: the fast axis flies each line while the MCS records a bin per pixel. The timing model is the
# stage's, in its units (um, s); line_overhead is what a flown line costs besides its pixels (run-up, arming,
# reading the bins): measure it once with `bash examples/dry_run_ioc.sh --fly`, which prints it.
fly_timing = StageTiming(pixel_size=0.05, dwell=0.01, velocity=20.0, acceleration=400.0, settle=0.005,
                         line_overhead=0.3)
flyer = MCSFlyer(MCS_PREFIX, x_motor=stage.x, y_motor=stage.y, timing=fly_timing, name="mcs")
for device in (stage, scaler, roi, flyer.mcs):
    try:
        device.wait_for_connection(timeout=5)
    except TimeoutError as exc:
        print(f"warning: {device.name} is not connected yet: {exc}")

# --- storage: the facility's tiled server if there is one, else a local catalog --------------
catalog = Catalog(os.environ.get("SMART_SCAN_CATALOG", "smart_scan_data"))
db = catalog.broker  # databroker's v1 Broker: db[-1].table(); catalog.client[uid] is the tiled run

RE = RunEngine({})
RE.subscribe(catalog.writer)
RE.subscribe(BatchProgress(every=5))
RE.subscribe(LiveSparseView())

print("""smart-scan beamline session: stage.y, stage.x, scaler, roi; catalog (db: databroker Broker)
set the dwell:   scaler.preset_time.put(0.05)      (or roi.acquire_time.put(0.05))
scan 101x101:    RE(smart_scan([scaler], stage.y, -5, 5, 101, stage.x, -5, 5, 101,
                               sampler={"stop": {"max_fraction": 0.2}}))
fly it:          RE(smart_scan([flyer], stage.y, -5, 5, 101, stage.x, -5, 5, 101, flyer=flyer,
                               sampler={"stop": {"max_fraction": 0.2}}))
read it back:    run = catalog.client.values().last(); image = read_scan(run).reconstruct(); plot_scan(run)
""")
