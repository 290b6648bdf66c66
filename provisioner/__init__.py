"""oscar-deploy's provisioner: the IM role (template → spec → plan → cloud → configure).

Nothing here imports ``elastic``; only ``provisioner.cli`` reaches it, lazily.
"""
