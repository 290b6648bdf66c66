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
- Without `networks`, Nova counts the project's own networks and every shared one (the seeded external
  `public` network is shared) and answers 409 `NetworkAmbiguous` for more than one; attaching to an
  external network that is not shared is a 403 (nova/network/neutron.py).
- The flavor is checked against the image (`min_ram`, size, `min_disk`; a 0 GB flavor disk needs a
  volume boot: 403), as nova/compute/api.py does; the seeded images are 2.2 GiB, so `m1.tiny` (1 GB)
  cannot boot them. `user_data` is limited on its base64 text (65535 characters).
- Security group rules: ethertype defaults to IPv4 and an IPv6 CIDR under it is a 400.
- A router (`router1`) joins `private` to `public`; a floating IP for a port must come from the
  gateway network of a router on its subnet (404 `ExternalGatewayForFloatingIPNotFound`) and starts
  DOWN. `add_network`, `add_router`, `set_router_gateway`, `add_flavor` shape other sites.
- Knobs reset with the project: `token_ttl_s` and `expire_tokens()` (Keystone token expiry),
  `credentials.oidc_tokens` (which access tokens the IdP accepts), `region` and `service_names` (the
  catalog a site publishes), `reclaim_instance_interval_s` (soft delete; `forceDelete` action),
  `compute_zones`/`volume_zones` (Nova's and Cinder's `os-availability-zone`, named apart), `quotas`
  (Nova 403, Neutron 409 `OverQuota`). `OpenStackServer(tls=(cert, key))` serves HTTPS
  (`tests.harness.openstack.tls` makes a private CA).
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
name or zone, and `MaxRetriesExceeded` likewise; `LostAnswer` lets the call act, then answers 504 as a
proxy that lost the reply), `latency_s` per call, `state` (everything that exists; with `?deployment=ID`, or
`leftovers(ID)`, what of one deployment is left), `calls`, `reset`.

Layout: `wire` (requests, error documents), `keys`, `seed` (credentials, flavors, images), `cloud`
(state and operations), `api` (routes), `server` (HTTP server, control endpoints, `OpenStackServer`).

Run by hand: `python -m tests.harness.openstack --port 5001 [--seed S --latency 0.5 --fault-rate 0.2]`.
"""

from tests.harness.openstack.seed import Credentials
from tests.harness.openstack.server import OpenStackServer, main

__all__ = ["Credentials", "OpenStackServer", "main"]
