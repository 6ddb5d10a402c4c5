#!/bin/sh
# Container entry point: serve the dashboard on 0.0.0.0:5006, allowing websocket connections
# from each origin in NBODY_WEBSOCKET_ORIGINS (comma-separated host:port). Extra arguments
# are passed to `panel serve`. --liveness enables /liveness for the HEALTHCHECK.
set -eu
origins="${NBODY_WEBSOCKET_ORIGINS:-localhost:5006}"
old_ifs="$IFS"
IFS=,
for origin in $origins; do
    set -- "$@" --allow-websocket-origin "$origin"
done
IFS="$old_ifs"
exec panel serve app --address 0.0.0.0 --port 5006 --liveness "$@"
