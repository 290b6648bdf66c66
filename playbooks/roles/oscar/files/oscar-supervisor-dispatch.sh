#!/bin/sh
# oscar-deploy: supervisor dispatch
# OSCAR runs this path in every service pod; on a cluster of more than one CPU architecture it execs
# the build of the node it runs on, which oscar-deploy's per-architecture jobs put beside it.
# BUILD is this file's path below the volume's root (supervisor, alpine/supervisor or fwatchdog).
BUILD=@BUILD@
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "oscar-deploy: OSCAR publishes no $BUILD build for $(uname -m)" >&2; exit 126 ;;
esac
case "$BUILD" in
  */*) root=${0%/*}/.. ;;
  *) root=${0%/*} ;;
esac
exec "$root/$arch/$BUILD" "$@"
