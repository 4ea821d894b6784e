"""The README's IPython session: the profile in examples/ipython_profile, run by IPython as installed."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_ipython_profile_runs_a_scan_and_reads_it_back_through_databroker(tmp_path):
    code = ("RE(smart_scan([sim.det], sim.y, 0, 0.75, 16, sim.x, 0, 0.75, 16, "
            "sampler={'seed': 0, 'stop': {'max_fraction': 0.2}})); "
            "print('table', db[-1].table().shape, db[-1].start['plan_name']); "
            "print('read back', len(read_scan(catalog.client.values().last()).points))")
    env = {**os.environ, "SMART_SCAN_CATALOG": str(tmp_path / "catalog"), "MPLBACKEND": "Agg"}
    profile = ROOT / "examples" / "ipython_profile"
    done = subprocess.run([sys.executable, "-m", "IPython", "--no-banner", f"--profile-dir={profile}",
                           "--HistoryManager.enabled=False", "-c", code],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # a hang guard only
    print(done.stdout[-2000:], done.stderr[-2000:])
    assert done.returncode == 0
    assert "smart-scan session: catalog" in done.stdout
    assert "table (51, 8) smart_scan" in done.stdout and "read back 51" in done.stdout
    assert list(tmp_path.glob("smart_scan_*.png"))  # the live view saved its figure (no display)
