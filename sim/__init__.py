"""The simulated instrument: a sample image behind ophyd devices, and a caproto IOC."""
