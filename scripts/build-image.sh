#!/usr/bin/env bash
# Build the daemon's container image (the repository's Containerfile) with buildah, on a local
# Debian 12 Python base made with debootstrap, so no container registry is needed.
#
#   bash scripts/build-image.sh [TAG]      (default TAG: localhost/oscar-deploy:dev; root only)
#
# The base (Debian 12 minbase + python3, python3-venv, openssh-client, ca-certificates) is built once
# and kept as .cache/image/debian12-python.tar and as the buildah image localhost/oscar-deploy-base:12;
# the dependencies' wheels are made once per pyproject.toml into .cache/image/wheels-<hash>/ (from the
# host's pip, which has its caches and index settings), so the image build itself reaches no network.
# Inside an overlay root (fresh.sh), buildah's overlay driver cannot stack: vfs is used there.
# Env: BUILDAH_STORAGE_DRIVER (default: vfs on an overlay root, else buildah's own), DEBIAN_MIRROR,
# IMAGE_ARCHIVE=PATH (also write the image there as a docker-archive, for k3s to import on sites
# without a registry: the elastic role's elastic_image_archive).
# Prints the seconds each step took as one JSON line last (base_s, wheels_s, build_s, archive_s).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-localhost/oscar-deploy:dev}
base_tag=localhost/oscar-deploy-base:12
cache=$PWD/.cache/image
mkdir -p "$cache"
(( EUID == 0 )) || { echo "build-image.sh: run as root (debootstrap, buildah --isolation chroot)" >&2; exit 2; }
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "build-image.sh: $tool missing (apt-get install $tool)" >&2; exit 2; }
done

driver=${BUILDAH_STORAGE_DRIVER:-}
if [[ -z $driver && $(stat -f -c %T /) == overlayfs ]]; then driver=vfs; fi
bah=(buildah ${driver:+--storage-driver "$driver"})

now() { date +%s.%N; }
secs() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$1" "$2"; }

# --- the base: debootstrap once, import into buildah's storage once -------------------------------
t0=$(now)
tarball=$cache/debian12-python.tar
if ! "${bah[@]}" inspect --type image "$base_tag" >/dev/null 2>&1; then
  if [[ ! -s $tarball ]]; then
    mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
    root=$(mktemp -d "$cache/root.XXXXXX")
    trap 'rm -rf --one-file-system "$root"' EXIT
    echo "build-image.sh: debootstrap Debian 12 into $root (from $mirror)" >&2
    # its own mount + PID namespace: the /proc and /sys debootstrap mounts cannot outlive it
    if ! unshare --mount --pid --fork --kill-child=SIGKILL --propagation private -- \
        debootstrap --variant=minbase --include=python3,python3-venv,openssh-client,ca-certificates \
        bookworm "$root" "$mirror" > "$cache/debootstrap.log" 2>&1; then
      tail -n 20 "$cache/debootstrap.log" >&2
      exit 1
    fi
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/var/cache/apt/*.bin "$root"/etc/resolv.conf
    mkdir -p "$root/var/lib/apt/lists/partial"
    tar -C "$root" --numeric-owner -cf "$tarball.new" .
    mv "$tarball.new" "$tarball"
    rm -rf --one-file-system "$root"
    trap - EXIT
  fi
  ctr=$("${bah[@]}" from scratch)
  "${bah[@]}" add "$ctr" "$tarball" / >/dev/null
  "${bah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /usr/bin/python3 --os linux --arch amd64 "$ctr"
  "${bah[@]}" commit --quiet --rm "$ctr" "$base_tag" >/dev/null
fi
t1=$(now)

# --- the wheels of the package's dependencies (and its build backend), made on the host ------------
# (from pyproject.toml's list: the package itself is built from the context, in the image's build stage)
key=$(cat pyproject.toml | sha256sum | cut -c1-16)
wheels=$cache/wheels-$key
if [[ ! -d $wheels ]]; then
  rm -rf "$cache"/wheels-*
  python=${PYTHON:-python3}; [[ -z ${PYTHON:-} && -x .venv/bin/python ]] && python=.venv/bin/python
  "$python" -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    > "$cache/requirements.txt"
  if ! "$python" -m pip wheel -q --wheel-dir "$wheels.new" -r "$cache/requirements.txt" 'setuptools>=77' wheel \
      > "$cache/wheels.log" 2>&1; then
    tail -n 20 "$cache/wheels.log" >&2
    exit 1
  fi
  mv "$wheels.new" "$wheels"
fi
t2=$(now)

# --- the image: exactly the Containerfile, offline from the wheels ----------------------------------
previous=$("${bah[@]}" images --quiet --noheading "$tag" 2>/dev/null || true)
"${bah[@]}" bud --quiet --isolation chroot --layers=false -f Containerfile -t "$tag" \
  --build-arg BASE_IMAGE="$base_tag" \
  --build-arg PIP_OPTIONS="--no-index --find-links /wheels" \
  --volume "$wheels:/wheels:ro" . >/dev/null
t3=$(now)
# the image this tag named before is no one's now: drop it (a container still using it keeps it)
current=$("${bah[@]}" images --quiet --noheading "$tag")
if [[ -n $previous && $previous != "$current" ]]; then "${bah[@]}" rmi "$previous" >/dev/null 2>&1 || true; fi
# a docker-archive for sites without a registry (k3s imports it from /var/lib/rancher/k3s/agent/images)
if [[ -n ${IMAGE_ARCHIVE:-} ]]; then
  rm -f "$IMAGE_ARCHIVE"
  "${bah[@]}" push --quiet "$tag" "docker-archive:$IMAGE_ARCHIVE:$tag" >/dev/null
fi
t4=$(now)
echo "{\"image\": \"$tag\", \"base_s\": $(secs "$t0" "$t1"), \"wheels_s\": $(secs "$t1" "$t2"), \"build_s\": $(secs "$t2" "$t3"), \"archive_s\": $(secs "$t3" "$t4")}"
