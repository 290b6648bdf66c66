"""OpenStack test server: a small stateful Keystone v3 + Nova + Neutron + Glance + Cinder over HTTP.

It covers the calls libcloud 3.9's stock `OpenStack_2_NodeDriver` makes and answers them the way the
real services do (status codes, bodies, error documents), keeping real state: a server created is
listed until deleted, a security group in use cannot be deleted, a floating IP attached shows in the
server's addresses. Nothing is canned per test.

Point the driver at it with its own arguments (`OpenStackServer.driver_kwargs()` builds them):

    OpenStack_2_NodeDriver(user, password, ex_force_auth_url="http://127.0.0.1:N",
                           ex_force_auth_version="3.x_password", ex_tenant_name="demo",
                           ex_domain_name="Default", ex_force_service_region="RegionOne")

- `3.x_appcred`: key = application credential id, secret = its secret.
- `3.x_oidc_access_token`: key = identity provider, secret = the OIDC access token,
  `ex_tenant_name` = protocol, `ex_domain_name` = project name (libcloud's mapping, not ours).
libcloud appends `/v3/auth/tokens` to the auth URL's path, so the auth URL is the Keystone root
(`http://host:5000`, or `.../identity`), never `.../v3`; both roots are served here.

Behaviour worth knowing when writing tests against it:
- Servers are BUILD for `build_delay_s` (default 0.2 s), then ACTIVE; addresses appear when ACTIVE.
  Volumes cannot be attached while a server builds (409, as Nova).
- Without `networks`, Nova picks the project's only tenant network; with several it answers 409.
- Neutron allows duplicate security group names; Nova then refuses a name that is ambiguous.
- Flavors show `extra_specs` from microversion 2.61 (`ex_force_microversion="2.61"`) or through
  `/flavors/{id}/os-extra_specs`, as Nova does; libcloud's `list_sizes` reads neither (use
  `ex_get_size_extra_specs`), and looks up a price per flavor in its 0.2 s pricing file, uncached on a
  miss: `libcloud.pricing.set_pricing("compute", "openstack", {})` makes it instant.
- Image properties (`os_distro`, `os_version`, `architecture`) are top-level keys as in Glance v2;
  libcloud's `NodeImage.extra` keeps `os_distro` and `os_version` only.

Test knobs (HTTP under `/_harness/`, or the `OpenStackServer` handle): `faults` (a `FaultPlan`:
`overLimit` 429, `computeFault` 500, `ServiceUnavailable` 503, and `NoValidHost`, which lets
the server be created and then puts it in ERROR with Nova's fault, optionally only for one flavor
name or zone), `latency_s` per call, `state` (everything that exists; with `?deployment=ID`, or
`leftovers(ID)`, what of one deployment is left), `calls`, `reset`.

Layout: `wire` (requests, error documents), `keys`, `seed` (credentials, flavors, images), `cloud`
(state and operations), `api` (routes), `server` (HTTP server, control endpoints, `OpenStackServer`).

Run by hand: `python -m tests.harness.openstack --port 5001 [--seed S --latency 0.5 --fault-rate 0.2]`.
"""

from tests.harness.openstack.seed import Credentials
from tests.harness.openstack.server import OpenStackServer, main

__all__ = ["Credentials", "OpenStackServer", "main"]
