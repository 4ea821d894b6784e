#!/usr/bin/env bash
# Tune stopping criteria for SSIM 0.90 on half of ../shared/data and check them on the other half
# (each half: 2 Bragg maps, 4 SEM images), with random probes for the SSIM estimate.
# Writes stop_ssim090.{png,txt} in the current folder, and stop_ssim090.json (sampler settings for
# smart_scan(sampler=FILE)) only where the rule holds on every image (see docs/stopping.rst; --force overrides).
set -euo pipefail
HERE=$(pwd)
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/venv.sh" tools
D=${STEERING_DATA:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/shared/data}
cd "$HERE"  # venv.sh works from the repository root; the outputs go where the script was called
python -m steering.tools.tune \
    "$D/s26/norm_log_sum_199_151x151.tif" "$D/s26/norm_log_sum_91_81x81.tif" \
    "$D/sem/sem_set1.png" "$D/sem/sem_set4.tif" "$D/sem/sem_set6.tif" "$D/sem/sem_set8.tif" \
    --holdout "$D/s26/norm_log_sum_84_101x101.tif" "$D/s26/norm_log_sum_95_81x81.tif" \
    "$D/sem/sem_set3.tif" "$D/sem/sem_set5.tif" "$D/sem/sem_set7.tif" "$D/sem/sem_set9.png" \
    --target ssim=0.90 --cap 0.8 --probe-fraction 0.1 --out stop_ssim090.json --figure stop_ssim090.png --report stop_ssim090.txt "$@"
