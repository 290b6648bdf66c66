#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian 12 / Python 3.11 machine, then run it.
# Arguments are passed to pytest (e.g. `bash scripts/test.sh -k plan`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: sshd for the board hosts, iproute2/util-linux for namespaces, python3-venv for the
# venv below (not in a fresh Debian). Root only (CI is root).
# buildah and debootstrap build and run the daemon's container image (tests/test_image.py).
# curl: the worker user data's own steps run in tests (tests/test_mesh.py), as cloud images have it.
debs=(openssh-server openssh-client iproute2 util-linux sshpass sudo python3-venv buildah debootstrap curl nftables)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # promtool from Debian's prometheus package, unpacked, never installed as a service.
  if [ ! -x .cache/prometheus/usr/bin/promtool ]; then
    mkdir -p .cache/debs && (cd .cache/debs && apt-get download -qq prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download -qq prometheus; })
    dpkg-deb -x .cache/debs/prometheus_*.deb .cache/prometheus
  fi
  # cloud-init's own cloud-config JSON schema, from Debian's package, unpacked (tests/test_cloudinit.py).
  if [ ! -f .cache/cloud-init/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json ]; then
    mkdir -p .cache/debs && (cd .cache/debs && apt-get download -qq cloud-init >/dev/null 2>&1 || { apt-get update -qq && apt-get download -qq cloud-init; })
    dpkg-deb -x .cache/debs/cloud-init_*.deb .cache/cloud-init
  fi
fi
[ -x .cache/prometheus/usr/bin/promtool ] && export PROMTOOL="$PWD/.cache/prometheus/usr/bin/promtool"

python3 -m venv .venv 2>/dev/null || python3 -m venv --without-pip .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
export PATH="$PWD/.venv/bin:$PATH"

ruff check .
# Three workers on two cores (most tests wait on servers, ssh and subprocesses); each test module stays
# on one worker, so module-scoped fixtures such as the board hosts are started once per module.
exec pytest -n "${PYTEST_WORKERS:-3}" --dist loadfile "$@"
