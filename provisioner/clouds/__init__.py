"""Cloud drivers: the narrow boundary between the engine (and the elastic daemon) and a cloud.

``base`` holds the contract (a Protocol, the data it speaks, the naming and tagging rules
of every resource); each provider module implements it on apache-libcloud's stock drivers.
"""
