"""ophyd devices of a real instrument (EPICS stages and detectors)."""
