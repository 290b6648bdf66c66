#!/bin/sh
# Puts the dispatchers at the paths OSCAR runs (oscar-pvc: supervisor, alpine/supervisor, fwatchdog) and
# keeps them there for WATCH seconds: the chart's populate-volume-job writes its single-architecture
# build over them whenever Helm installs or upgrades the chart, which may happen after this job starts.
# Each is replaced by a rename, so a pod starting meanwhile runs either the old file or the new one.
set -u
DATA=${DATA:-/data}
DISPATCH=${DISPATCH:-/dispatch}
WATCH=${WATCH:-900}
INTERVAL=${INTERVAL:-10}
end=$(( $(date +%s) + WATCH ))
while :; do
  for pair in supervisor:supervisor alpine/supervisor:alpine-supervisor fwatchdog:fwatchdog; do
    path=${pair%%:*}
    key=${pair##*:}
    if ! head -c 200 "$DATA/$path" 2>/dev/null | grep -q "oscar-deploy: supervisor dispatch"; then
      mkdir -p "$DATA/alpine"
      cp "$DISPATCH/$key" "$DATA/$path.oscar-deploy" && chmod 0755 "$DATA/$path.oscar-deploy" \
        && mv -f "$DATA/$path.oscar-deploy" "$DATA/$path" && echo "dispatcher at $path"
    fi
  done
  [ "$(date +%s)" -ge "$end" ] && exit 0
  sleep "$INTERVAL"
done
