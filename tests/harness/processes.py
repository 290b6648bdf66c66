"""Stopping a daemon a test started as a subprocess."""

from __future__ import annotations

import signal
import subprocess


def stop(process: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    """SIGTERM (how Kubernetes stops a pod), then the process's stdout and stderr; killed if it has
    not ended within ``timeout`` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()
