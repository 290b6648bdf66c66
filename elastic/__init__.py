"""oscar-deploy's elastic daemon: the CLUES role (cluster state → decision → actions).

``elastic.policy.decide`` is pure and shared by the daemon, the simulator and the benchmarks.
"""
