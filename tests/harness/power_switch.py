"""A stand-in for the PoE switch behind edge boards, shared by the daemon's pod tests: it follows the
power command's log (``on NODE UID`` / ``off NODE UID`` lines the tests' switch script writes) and
plays the boards on the Kubernetes API test server."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


class Switch:
    """Plays the boards behind the PoE switch: ``on`` boots the node (it registers, or its kubelet
    resumes), ``off`` stops its kubelet, as a power cut does."""

    def __init__(self, kube: Any, log: Path, labels: dict[str, str]) -> None:
        self.kube, self.log, self.labels = kube, log, labels
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.wait(0.05):
            lines = self.log.read_text().splitlines() if self.log.exists() else []
            for line in lines[len(self.seen):]:
                action, node, _uid = line.split()
                if action == "on" and not any(n["metadata"]["name"] == node for n in self.kube.nodes()):
                    self.kube.register_node(node, cpus=4, memory_mib=8192, labels=self.labels)
                elif action == "on":
                    self.kube.restart_node(node)
                else:
                    self.kube.set_node_ready(node, False)
                self.seen.append(line)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
