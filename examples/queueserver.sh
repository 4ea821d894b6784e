#!/usr/bin/env bash
# The bluesky queue server with smart_scan: install into .venv (the queue server included), start Redis on
# loopback if none answers there, and run the RE Manager in the foreground (Ctrl-C stops it, and the Redis
# this script started). Its worker loads examples/queueserver/startup (the simulated microscope; EPICS
# devices too with SMART_SCAN_IOC_PREFIX=sim: and python -m sim.ioc running). In another terminal:
#   source .venv/bin/activate
#   qserver environment open
#   qserver queue add plan '{"name": "smart_scan", "args": [["sim.det"], "sim.y", 0, 6.35, 128, "sim.x", 0, 6.35, 128],
#                            "kwargs": {"sampler": {"stop": {"max_fraction": 0.1}}, "beam_clock": "sim.beam_time"}}'
#   qserver queue start
# Extra arguments go to start-re-manager.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/venv.sh" queueserver
REDIS_PORT=${REDIS_PORT:-6379}
STATE=${SMART_SCAN_QUEUE_STATE:-smart_scan_data/queueserver}  # the list of plans and devices it writes
mkdir -p "$STATE"
if ! python -c "import redis, sys; redis.Redis(port=$REDIS_PORT).ping()" 2>/dev/null; then
  command -v redis-server >/dev/null || { echo "redis-server is not installed (Debian: apt-get install redis-server)"; exit 1; }
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --logfile "$STATE/redis.log" &
  trap 'kill $! 2>/dev/null' EXIT
  echo "started redis-server on 127.0.0.1:$REDIS_PORT"
fi
start-re-manager --startup-dir examples/queueserver/startup \
  --existing-plans-devices "$STATE/existing_plans_and_devices.yaml" \
  --user-group-permissions examples/queueserver/user_group_permissions.yaml \
  --redis-addr "127.0.0.1:$REDIS_PORT" --zmq-control-addr tcp://127.0.0.1:60615 --zmq-info-addr tcp://127.0.0.1:60625 "$@"
