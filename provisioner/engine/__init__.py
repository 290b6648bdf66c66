"""The provisioning engine: executes a Plan against the clouds, resumably, and takes it down again.

One module per lifecycle phase (as Karpenter's ``nodeclaim/lifecycle``):

- ``targets``: pure; what to build per group (deterministic node names, sizes to fall back to).
- ``sites``: per cloud/region the driver, key pair, security group, images.
- ``launch``: parallel creates with capacity fallback, waiting until machines run.
- ``create``: the whole ``create`` (record first, secrets, machines, volume, address, SSH, configure).
- ``scale``, ``destroy``, ``update`` (``create --update``): the other mutating commands.
  ``views``: pure ``show``/``outputs``/``list``.
- ``cluster``: which workers run user pods, asked of the deployment's Kubernetes API (for ``scale``).
- ``reach``: the SSH wait; ``keys``: the per-deployment SSH key; ``progress``: bars on stderr.

The engine is handed a ``DriverFactory`` (provider, region → ``CloudDriver``) and never sees a
credential value; it returns data and raises the typed errors of ``provisioner.errors``; only the
CLI prints.
"""

from provisioner.engine.create import CreateRequest, create, with_credential_regions
from provisioner.engine.destroy import Removed, destroy, sweep
from provisioner.engine.scale import ScaleResult, scale
from provisioner.engine.sites import DriverFactory

__all__ = ["CreateRequest", "DriverFactory", "Removed", "ScaleResult", "create", "destroy", "scale", "sweep",
           "with_credential_regions"]
