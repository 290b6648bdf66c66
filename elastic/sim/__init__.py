"""The simulator behind ``oscar-deploy simulate``, split by concern: ``trace`` (CSV jobs), ``engine``
(discrete-event cluster in virtual time), ``baselines`` (CLUES, Cluster Autoscaler, static),
``bounds`` (lower bounds on node-hours) and ``report`` (table, PNG, Markdown).
``elastic.simulate`` is the entry point that wires them together."""
