"""`python -m tests.harness.openstack --port N`: run the OpenStack test server by hand."""

from tests.harness.openstack.server import main

main()
