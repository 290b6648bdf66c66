"""bench/image: how long the daemon's container image takes to build here, and how big it is.

Runs ``scripts/build-image.sh`` (root: debootstrap and buildah) as CI's image test does, and reports
its steps: ``base_s`` (the Debian 12 base by debootstrap, then imported; near 0 once cached),
``wheels_s`` (the dependencies' wheels, once per pyproject.toml), ``build_s`` (``buildah bud`` of the
Containerfile, every time), and the image's size. ``--cold`` drops the cached base and wheels first.
Target: a warm build (cached base and wheels) within ``BUILD_TARGET_S`` on this 2-core machine,
so the image test stays a few minutes of CI.

    sudo python bench/image.py [--cold]

The last line printed is one JSON object with the figures and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TAG = "localhost/oscar-deploy:bench"
BASE_TAG = "localhost/oscar-deploy-base:12"
BUILD_TARGET_S = 240.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cold", action="store_true", help="rebuild the base and the wheels too")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("buildah") or not shutil.which("debootstrap"):
        sys.exit("bench/image: needs root, buildah and debootstrap")
    if args.cold:
        subprocess.run(["buildah", "rmi", BASE_TAG], capture_output=True, check=False)
        cache = REPO / ".cache" / "image"
        (cache / "debian12-python.tar").unlink(missing_ok=True)
        for wheels in cache.glob("wheels-*"):
            shutil.rmtree(wheels)
    result = subprocess.run(["bash", "scripts/build-image.sh", TAG], cwd=REPO, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"bench/image: the build failed:\n{result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    inspect = subprocess.run(["buildah", "inspect", "--type", "image", TAG], capture_output=True, text=True,
                             check=True)
    layers = json.loads(inspect.stdout)["Docker"]["rootfs"]["diff_ids"]
    sizes = subprocess.run(["buildah", "images", "--format", "{{.Size}}", TAG], capture_output=True,
                           text=True, check=True).stdout.split()
    subprocess.run(["buildah", "rmi", TAG], capture_output=True, check=False)
    figures.update({"cold": args.cold, "image_size": " ".join(sizes), "layers": len(layers),
                    "build_target_s": BUILD_TARGET_S, "loadavg_1m": round(os.getloadavg()[0], 2)})
    print(json.dumps(figures))
    return 0 if figures["build_s"] <= BUILD_TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
