"""A smart scan in a process of its own, for the tests that kill it or press Ctrl-C at it.

``python tests/scan_in_child.py CATALOG_DIR [--resume-from JOURNAL]``

Prints ``uid <uid>`` when the run opens, ``exposure <y> <x>`` at each trigger of the detector,
``event <n>`` after each point, ``paused`` when the RunEngine pauses (it then resumes at once) and
``done <exit status> <points>`` at the end. Every line is flushed, so a parent can act at a given
point and count the sample's exposures of a session it killed.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from blob_image import blob_image  # noqa: E402
from bluesky import RunEngine  # noqa: E402
from bluesky.utils import RunEngineInterrupted  # noqa: E402

from plans import Catalog, smart_scan  # noqa: E402
from sim import SimulatedMicroscope  # noqa: E402

SHAPE = 64
FRACTION = 0.15


def sample_image() -> np.ndarray:
    """The conftest ``blobs`` image."""
    return blob_image(SHAPE)


def scan(scope: SimulatedMicroscope, resume_from=None):
    return smart_scan([scope.det], scope.y, 0, SHAPE - 1, SHAPE, scope.x, 0, SHAPE - 1, SHAPE,
                      sampler={"seed": 0, "stop": {"max_fraction": FRACTION}}, resume_from=resume_from)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("catalog")
    parser.add_argument("--resume-from", default=None)
    args = parser.parse_args()
    # a 5 ms dwell and fast stages in real time: slow enough to be interrupted mid-scan
    scope = SimulatedMicroscope(sample_image(), name="sim", dwell=0.005, velocity=1e4, time_scale=1.0)
    expose = scope.det.trigger

    def trigger():
        print("exposure", scope.y.position, scope.x.position, flush=True)
        return expose()

    scope.det.trigger = trigger
    with Catalog(args.catalog) as catalog:
        RE = RunEngine({})
        RE.subscribe(catalog.writer)
        count = {"points": 0}

        def say(name, doc):
            if name == "start":
                print("uid", doc["uid"], flush=True)
            elif name == "event" and "sim_det" in doc["data"]:
                count["points"] += 1
                print("event", count["points"], flush=True)
            elif name == "stop":
                print("done", doc["exit_status"], count["points"], flush=True)

        RE.subscribe(say)
        try:
            RE(scan(scope, args.resume_from))
        except RunEngineInterrupted:
            while RE.state == "paused":
                print("paused", flush=True)
                try:
                    RE.resume()
                except RunEngineInterrupted:
                    continue
    return 0


if __name__ == "__main__":
    sys.exit(main())
