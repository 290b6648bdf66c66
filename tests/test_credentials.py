"""Cloud credentials: the IM auth file, the environment and the usual files, and no secret leaks.

Real files in tmp dirs; ``env`` and ``home`` are passed in, so the developer's own credentials are
never read. Secrets are unique random strings, so a leak anywhere is detected by a plain search.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.credentials import (
    AwsCredentials,
    CredentialSource,
    OpenStackCredentials,
    choose_region,
    credentials_from_source,
    parse_auth_text,
    resolve_credentials,
)
from provisioner.errors import BadInput, CredentialsError


def secret() -> str:
    return f"S3cr3t-{uuid.uuid4().hex}"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def resolve(providers: list[str], tmp_path: Path, env: dict[str, str] | None = None,
            auth: Path | None = None, **kwargs: Any) -> dict[str, Any]:
    """Resolve with a private home, cwd and /etc, so nothing of the machine's own leaks in."""
    home = tmp_path / "home"
    cwd = tmp_path / "cwd"
    home.mkdir(exist_ok=True)
    cwd.mkdir(exist_ok=True)
    return resolve_credentials(providers, auth, env or {}, home, cwd=cwd,
                               system_openstack_dir=tmp_path / "etc-openstack", **kwargs)


# --- the IM auth file ----------------------------------------------------------------------------


def test_a_keystone_url_without_tls_warns_unless_it_is_loopback(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    password = secret()
    for host, warned in (("http://keystone.example:5000/v3", True),
                         ("https://keystone.example:5000/v3", False), ("http://127.0.0.1:5000/v3", False)):
        caplog.clear()
        auth = write(tmp_path / "auth.dat", f"id = o; type = OpenStack; host = {host}; username = u; "
                                            f"password = {password}; tenant = t\n")
        with caplog.at_level(logging.WARNING):
            resolve(["openstack"], tmp_path, auth=auth)
        said = [r.getMessage() for r in caplog.records if "not https" in r.getMessage()]
        assert bool(said) == warned, (host, said)
        assert not any(password in r.getMessage() for r in caplog.records)


def test_im_auth_file_ec2_and_openstack_lines(tmp_path: Path) -> None:
    aws_secret, os_password = secret(), secret()
    auth = write(tmp_path / "auth.dat", f"""\
# the IM's own credential is valid here and ignored
type = InfrastructureManager; username = user; password = pass
id = aws; type = EC2; username = AKIAEXAMPLE; password = {aws_secret}; region = eu-west-1
id = ost; type = OpenStack; host = https://keystone.example:5000/v3; username = alice; \
password = {os_password}; tenant = oscar; domain = MyDomain; auth_version = 3.x_password; region = RegionOne
""")
    creds = resolve(["fleet", "aws", "openstack", "aws"], tmp_path, auth=auth)
    assert set(creds) == {"aws", "openstack"}  # fleet needs none
    aws = creds["aws"]
    assert isinstance(aws, AwsCredentials)
    assert (aws.access_key_id, aws.secret_access_key, aws.region, aws.endpoint_url) == (
        "AKIAEXAMPLE", aws_secret, "eu-west-1", None)
    assert aws.source == CredentialSource("auth-file", str(auth), "aws")
    assert aws.source.describe() == f"{auth} [aws]"
    ost = creds["openstack"]
    assert isinstance(ost, OpenStackCredentials)
    assert (ost.auth_type, ost.auth_url, ost.username, ost.secret, ost.project_name, ost.user_domain_name,
            ost.region) == ("password", "https://keystone.example:5000/v3", "alice", os_password, "oscar",
                            "MyDomain", "RegionOne")
    assert ost.source.entry == "ost"


def test_quotes_newlines_equals_signs_and_file_values(tmp_path: Path) -> None:
    key_file = write(tmp_path / "secret.txt", "from-a-file")
    auth = write(tmp_path / "auth.dat", (
        'id = a; type = EC2; username = AK; password = "semi;colon\'s=="; host = http://127.0.0.1:5000\n'
        "id = b; type = EC2; username = AK2; password = 'line1\\nline2'\n"
        f"id = c; type = EC2; username = AK3; password = file({key_file}); token = abc==\n"
    ))
    first = resolve(["aws"], tmp_path, auth=auth)["aws"]
    assert first.secret_access_key == "semi;colon's=="
    assert first.endpoint_url == "http://127.0.0.1:5000"
    assert resolve(["aws"], tmp_path, auth=auth, ids={"aws": "b"})["aws"].secret_access_key == "line1\nline2"
    third = resolve(["aws"], tmp_path, auth=auth, ids={"aws": "c"})["aws"]
    assert (third.secret_access_key, third.session_token) == ("from-a-file", "abc==")


def test_openstack_application_credentials_and_oidc_tokens(tmp_path: Path) -> None:
    app_secret, token = secret(), secret()
    auth = write(tmp_path / "auth.dat", f"""\
id = app; type = OpenStack; host = https://keystone:5000; auth_version = 3.x_appcred; \
username = appcred-id; password = {app_secret}; service_region = RegionTwo
id = egi; type = OpenStack; host = https://keystone.egi:5000/v3; auth_version = 3.x_oidc_access_token; \
username = egi.eu; password = {token}; tenant = openid; domain = project-123
id = egi2; type = OpenStack; host = https://keystone.egi:5000/v3; auth_version = 3.x_oidc_access_token; \
username = egi.eu; token = {token}; domain = project-456
""")
    app = resolve(["openstack"], tmp_path, auth=auth)["openstack"]
    assert (app.auth_type, app.application_credential_id, app.secret, app.region) == (
        "application_credential", "appcred-id", app_secret, "RegionTwo")
    oidc = resolve(["openstack"], tmp_path, auth=auth, ids={"openstack": "egi"})["openstack"]
    assert (oidc.auth_type, oidc.identity_provider, oidc.protocol, oidc.project_id, oidc.secret) == (
        "oidc_access_token", "egi.eu", "openid", "project-123", token)
    via_token = resolve(["openstack"], tmp_path, auth=auth, ids={"openstack": "egi2"})["openstack"]
    assert (via_token.secret, via_token.protocol, via_token.project_id) == (token, "openid", "project-456")


@pytest.mark.parametrize(("text", "expected"), [
    ("id = a; type = EC2; username = AK; password SECRETVALUE\n", "line 1: item 4 is not 'key = value'"),
    ('id = a; type = EC2; username = AK; password = "SECRETVALUE\n', "line 1: a \" quote is never closed"),
    ("\n# ok\nid = a; username = AK; password = SECRETVALUE\n", "line 3: no 'type'"),
    ("id = a; type = EC2; username = AK; password = SECRETVALUE; password = SECRETVALUE\n",
     "line 1: key 'password' is given twice"),
    ("id = a; type = EC2; username = AK; pasword = SECRETVALUE\n", "line 1 (a): unknown key 'pasword'"),
    ("id = a; type = EC2; username = AK\n", "line 1 (a): missing password (the secret access key)"),
    ("type = OpenStack; host = https://k:5000; username = u; password = SECRETVALUE; tenant = t; "
     "auth_version = 2.0_password\n", "line 1: auth_version 2.0_password (Keystone v2)"),
    ("id = o; type = OpenStack; host = keystone:5000; username = u; password = SECRETVALUE; tenant = t\n",
     "line 1 (o): host must be the Keystone URL"),
    ("id = o; type = OpenStack; host = https://k; username = u; password = SECRETVALUE\n",
     "line 1 (o): missing tenant (the project name)"),
    ("id = a; type = EC2; username = AK; password = SECRETVALUE; = x\n", "line 1: item 5 is not"),
])
def test_a_malformed_auth_file_names_path_and_line_but_not_the_secret(
        tmp_path: Path, text: str, expected: str) -> None:
    auth = write(tmp_path / "auth.dat", text)
    with pytest.raises(CredentialsError) as info:
        resolve(["aws", "openstack"], tmp_path, auth=auth)
    message = str(info.value)
    assert message.startswith(str(auth)) and expected in message, message
    assert "SECRETVALUE" not in message
    assert info.value.exit_code == 2 and isinstance(info.value, BadInput)


def test_auth_file_missing_a_cloud_the_plan_uses(tmp_path: Path) -> None:
    auth = write(tmp_path / "auth.dat", "id = aws; type = EC2; username = AK; password = x\n")
    with pytest.raises(CredentialsError, match=r"auth.dat: no credential for openstack .*type = OpenStack"):
        resolve(["aws", "openstack"], tmp_path, auth=auth)
    with pytest.raises(CredentialsError, match="no EC2 or OpenStack credential with id 'other'"):
        resolve(["aws"], tmp_path, auth=auth, ids={"aws": "other"})
    with pytest.raises(CredentialsError, match="auth file not found"):
        resolve(["aws"], tmp_path, auth=tmp_path / "nope.dat")
    # with --auth, the environment is not a fallback
    with pytest.raises(CredentialsError, match="no credential for openstack"):
        resolve(["openstack"], tmp_path, auth=auth, env={"OS_AUTH_URL": "https://k", "OS_USERNAME": "u"})


def test_a_broken_line_is_reported_even_when_the_plan_does_not_use_it(tmp_path: Path) -> None:
    auth = write(tmp_path / "auth.dat", "id = aws; type = EC2; username = AK; password = x\n"
                                        "id = ost; type = OpenStack; username = u; password = p\n")
    with pytest.raises(CredentialsError, match=r"auth.dat line 2 \(ost\): missing host"):
        resolve(["aws"], tmp_path, auth=auth)
    assert resolve(["fleet"], tmp_path, auth=auth) == {}  # nothing needed: the file is not read


def test_world_readable_auth_file_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    auth = write(tmp_path / "auth.dat", "id = aws; type = EC2; username = AK; password = x\n")
    auth.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        resolve(["aws"], tmp_path, auth=auth)
    assert "readable by other users" in caplog.text


def test_several_lines_of_one_type_use_the_first(tmp_path: Path) -> None:
    auth = write(tmp_path / "auth.dat", "id = one; type = ec2; username = A1; password = x\n"
                                        "id = two; type = EC2; username = A2; password = y\n")
    assert resolve(["aws"], tmp_path, auth=auth)["aws"].access_key_id == "A1"
    assert resolve(["aws"], tmp_path, auth=auth, ids={"aws": "two"})["aws"].access_key_id == "A2"


_VALUE_CHARS = st.characters(min_codepoint=1, max_codepoint=0x2FFF, blacklist_characters="\\\"'\n",
                             blacklist_categories=("Cs",))


@given(value=st.text(_VALUE_CHARS, min_size=1, max_size=40), quote=st.sampled_from(['"', "'"]))
@settings(max_examples=200, deadline=None)
def test_any_quoted_value_reads_back_unchanged(value: str, quote: str) -> None:
    """Whatever a password holds (';', '=', '#', blanks, non-ASCII), quoting it keeps it intact."""
    text = f"id = x; type = EC2; username = u; password = {quote}{value}{quote}; region = r\n"
    (entry,) = parse_auth_text(text, "mem")
    assert entry.values["password"] == value
    assert entry.values["region"] == "r"


def test_parse_keeps_line_numbers_and_hides_values_in_repr() -> None:
    value = secret()
    entries = parse_auth_text(f"# c\n\nid = x; type = EC2; username = u; password = {value}\n", "mem")
    assert [(e.line, e.id, e.type) for e in entries] == [(3, "x", "EC2")]
    assert value not in repr(entries)


# --- the environment: AWS ------------------------------------------------------------------------


def test_aws_from_environment_variables(tmp_path: Path) -> None:
    value, token = secret(), secret()
    env = {"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": value, "AWS_SESSION_TOKEN": token,
           "AWS_DEFAULT_REGION": "us-east-2", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}
    aws = resolve(["aws"], tmp_path, env)["aws"]
    assert (aws.access_key_id, aws.secret_access_key, aws.session_token, aws.region, aws.endpoint_url) == (
        "AKIAENV", value, token, "us-east-2", "http://127.0.0.1:5000")
    assert aws.source == CredentialSource("environment")
    assert resolve(["aws"], tmp_path, {**env, "AWS_REGION": "eu-north-1"})["aws"].region == "eu-north-1"
    with pytest.raises(CredentialsError, match="AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"):
        resolve(["aws"], tmp_path, {"AWS_ACCESS_KEY_ID": "AKIAENV"})


def test_aws_profile_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    default_secret, work_secret = secret(), secret()
    write(home / ".aws" / "credentials", f"[default]\naws_access_key_id = AKDEF\n"
                                         f"aws_secret_access_key = {default_secret}\n\n"
                                         f"[work]\naws_access_key_id = AKWORK\n"
                                         f"aws_secret_access_key = {work_secret}\n")
    write(home / ".aws" / "config", "[default]\nregion = eu-west-3\n\n[profile work]\nregion = ap-south-1\n"
                                    "endpoint_url = http://127.0.0.1:4566\n")
    default = resolve(["aws"], tmp_path)["aws"]
    assert (default.access_key_id, default.secret_access_key, default.region) == (
        "AKDEF", default_secret, "eu-west-3")
    assert default.source == CredentialSource("aws-profile", str(home / ".aws" / "credentials"), "default")
    work = resolve(["aws"], tmp_path, {"AWS_PROFILE": "work"})["aws"]
    assert (work.access_key_id, work.region, work.endpoint_url) == (
        "AKWORK", "ap-south-1", "http://127.0.0.1:4566")
    # the environment's keys win over the files, as with the AWS CLI
    env_keys = {"AWS_ACCESS_KEY_ID": "AKENV", "AWS_SECRET_ACCESS_KEY": secret()}
    assert resolve(["aws"], tmp_path, env_keys)["aws"].access_key_id == "AKENV"
    with pytest.raises(CredentialsError, match=r"AWS_PROFILE=ghost but neither .*credentials nor .*config"):
        resolve(["aws"], tmp_path, {"AWS_PROFILE": "ghost"})


def test_aws_keys_in_the_config_file_and_broken_ini(tmp_path: Path) -> None:
    home = tmp_path / "home"
    value = secret()
    write(home / ".aws" / "config",
          f"[profile cfg]\naws_access_key_id = AKCFG\naws_secret_access_key = {value}\n")
    assert resolve(["aws"], tmp_path, {"AWS_PROFILE": "cfg"})["aws"].access_key_id == "AKCFG"
    write(home / ".aws" / "credentials", f"aws_secret_access_key = {value}\n[default]\n")
    with pytest.raises(CredentialsError) as info:
        resolve(["aws"], tmp_path)
    assert "credentials line 1: not valid INI syntax" in str(info.value)
    assert value not in str(info.value)


def test_no_aws_credentials_at_all(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match=r"no AWS credentials found \(the plan uses aws\)"):
        resolve(["aws"], tmp_path)
    assert resolve(["fleet"], tmp_path) == {}


# --- the environment: OpenStack ------------------------------------------------------------------


def test_openstack_openrc_variables(tmp_path: Path) -> None:
    value = secret()
    env = {"OS_AUTH_URL": "https://keystone:5000/v3", "OS_USERNAME": "bob", "OS_PASSWORD": value,
           "OS_PROJECT_NAME": "proj", "OS_USER_DOMAIN_NAME": "Users", "OS_PROJECT_DOMAIN_NAME": "Projects",
           "OS_REGION_NAME": "RegionOne"}
    ost = resolve(["openstack"], tmp_path, env)["openstack"]
    assert (ost.auth_type, ost.username, ost.secret, ost.project_name, ost.user_domain_name,
            ost.project_domain_name, ost.region) == ("password", "bob", value, "proj", "Users", "Projects",
                                                     "RegionOne")
    assert ost.source == CredentialSource("environment")
    missing = {k: v for k, v in env.items() if k != "OS_PASSWORD"}
    with pytest.raises(CredentialsError, match=r"^environment: OS_PASSWORD is not set$"):
        resolve(["openstack"], tmp_path, missing)


def test_openstack_application_credential_and_token_variables(tmp_path: Path) -> None:
    app_secret, token = secret(), secret()
    app = resolve(["openstack"], tmp_path, {
        "OS_AUTH_URL": "https://k:5000/v3", "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_APPLICATION_CREDENTIAL_ID": "ac-1", "OS_APPLICATION_CREDENTIAL_SECRET": app_secret})["openstack"]
    assert (app.auth_type, app.application_credential_id, app.secret) == (
        "application_credential", "ac-1", app_secret)
    oidc = resolve(["openstack"], tmp_path, {
        "OS_AUTH_URL": "https://k:5000/v3", "OS_AUTH_TYPE": "v3oidcaccesstoken", "OS_ACCESS_TOKEN": token,
        "OS_IDENTITY_PROVIDER": "egi.eu", "OS_PROTOCOL": "openid", "OS_PROJECT_ID": "p-1"})["openstack"]
    assert (oidc.auth_type, oidc.secret, oidc.identity_provider, oidc.project_id) == (
        "oidc_access_token", token, "egi.eu", "p-1")
    with pytest.raises(CredentialsError, match="auth type 'v3totp' is not supported"):
        resolve(["openstack"], tmp_path, {"OS_AUTH_URL": "https://k", "OS_AUTH_TYPE": "v3totp"})


CLOUDS_YAML = """\
clouds:
  mysite:
    auth:
      auth_url: https://mysite:5000/v3
      username: carol
      project_name: science
      user_domain_name: Default
      project_domain_name: Default
    region_name: Lab
  appsite:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://appsite:5000
      application_credential_id: ac-9
      application_credential_secret: {app_secret}
    regions: [North, South]
"""


def test_clouds_yaml_with_os_cloud_and_secure_yaml(tmp_path: Path) -> None:
    home = tmp_path / "home"
    password, app_secret = secret(), secret()
    path = write(home / ".config" / "openstack" / "clouds.yaml", CLOUDS_YAML.format(app_secret=app_secret))
    write(home / ".config" / "openstack" / "secure.yaml", f"clouds:\n  mysite:\n    auth:\n"
                                                          f"      password: {password}\n")
    site = resolve(["openstack"], tmp_path, {"OS_CLOUD": "mysite"})["openstack"]
    assert (site.username, site.secret, site.project_name, site.region) == (
        "carol", password, "science", "Lab")
    assert site.source == CredentialSource("clouds.yaml", str(path), "mysite")
    app = resolve(["openstack"], tmp_path, {"OS_CLOUD": "appsite"})["openstack"]
    assert (app.auth_type, app.secret, app.region) == ("application_credential", app_secret, "North")
    with pytest.raises(CredentialsError, match="no cloud named 'other' \\(known: mysite, appsite\\)"):
        resolve(["openstack"], tmp_path, {"OS_CLOUD": "other"})
    with pytest.raises(CredentialsError, match=r"2 clouds .*choose one with OS_CLOUD"):
        resolve(["openstack"], tmp_path)


def test_clouds_yaml_search_order_and_the_only_cloud(tmp_path: Path) -> None:
    write(tmp_path / "etc-openstack" / "clouds.yaml",
          "clouds:\n  sys:\n    auth: {auth_url: 'https://sys', username: u, password: p, project_name: x}\n")
    assert resolve(["openstack"], tmp_path)["openstack"].auth_url == "https://sys"
    write(tmp_path / "cwd" / "clouds.yaml",
          "clouds:\n  here:\n    auth: {auth_url: 'https://here', username: u, password: p, "
          "project_name: x}\n")
    found = resolve(["openstack"], tmp_path)["openstack"]
    assert (found.auth_url, found.source.entry) == ("https://here", "here")
    with pytest.raises(CredentialsError, match=r"no clouds\.yaml was found"):
        resolve(["openstack"], tmp_path, {"OS_CLOUD": "x", "OS_CLIENT_CONFIG_FILE": str(tmp_path / "none")})


def test_broken_clouds_yaml_names_the_line_not_the_value(tmp_path: Path) -> None:
    value = secret()
    path = write(tmp_path / "cwd" / "clouds.yaml", f"clouds:\n  a:\n    auth:\n      password: {value}\n"
                                                   f"    bad: [unclosed {value}\n")
    with pytest.raises(CredentialsError) as info:
        resolve(["openstack"], tmp_path, {"OS_CLOUD": "a"})
    assert str(info.value).startswith(f"{path} line ") and "not valid YAML" in str(info.value)
    assert value not in str(info.value)


def test_no_openstack_credentials_at_all(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match=r"no OpenStack credentials found \(the plan uses openstack\)"):
        resolve(["openstack"], tmp_path)


# --- region, libcloud mapping, re-reading a recorded source --------------------------------------


def test_region_precedence() -> None:
    assert choose_region("from-i", "from-auth", "from-template") == "from-i"
    assert choose_region(None, "from-auth", "from-template") == "from-auth"
    assert choose_region("", None, "from-template") == "from-template"
    assert choose_region(None, None, None) is None


def test_libcloud_arguments_build_the_keystone_requests_libcloud_sends(tmp_path: Path) -> None:
    from libcloud.compute.providers import Provider, get_driver

    value = secret()
    base = {"auth_url": "https://keystone:5000/v3/", "secret": value,
            "source": CredentialSource("environment")}
    cases: list[tuple[OpenStackCredentials, Callable[[dict[str, Any]], None]]] = [
        (OpenStackCredentials(auth_type="password", username="u", project_name="p",
                              user_domain_name="Users", project_domain_id="pd", region="R1", **base),
         lambda body: (
             _eq(body["auth"]["identity"]["password"]["user"], {"name": "u", "password": value,
                                                                  "domain": {"name": "Users"}}),
             _eq(body["auth"]["scope"]["project"], {"name": "p", "domain": {"id": "pd"}}))),
        (OpenStackCredentials(auth_type="application_credential", application_credential_id="ac", **base),
         lambda body: _eq(body["auth"]["identity"]["application_credential"], {"id": "ac", "secret": value})),
    ]
    openstack = get_driver(Provider.OPENSTACK)
    for creds, check in cases:
        key, secret_value, kwargs = creds.libcloud_args()
        assert kwargs["ex_force_auth_url"] == "https://keystone:5000"
        driver = openstack(key, secret_value, **kwargs)
        check(driver.connection.get_auth_class()._get_auth_data())
    oidc = OpenStackCredentials(auth_type="oidc_access_token", identity_provider="egi.eu", protocol="openid",
                                project_id="p-1", **base)
    key, secret_value, kwargs = oidc.libcloud_args()
    auth = openstack(key, secret_value, **kwargs).connection.get_auth_class()
    assert (auth.user_id, auth.key, auth.tenant_name, auth.domain_name) == ("egi.eu", value, "openid", "p-1")


def _eq(actual: Any, expected: Any) -> None:
    assert actual == expected


def test_a_recorded_source_reads_the_same_credential_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    auth = write(tmp_path / "auth.dat", "id = one; type = EC2; username = A1; password = x\n"
                                        "id = two; type = EC2; username = A2; password = y\n")
    write(home / ".aws" / "credentials", "[work]\naws_access_key_id = AKW\naws_secret_access_key = z\n")
    write(home / ".config" / "openstack" / "clouds.yaml",
          "clouds:\n  c:\n    auth: {auth_url: 'https://c', username: u, password: p, project_name: x}\n")
    originals = [
        resolve(["aws"], tmp_path, auth=auth, ids={"aws": "two"})["aws"],
        resolve(["aws"], tmp_path, {"AWS_PROFILE": "work"})["aws"],
        resolve(["openstack"], tmp_path, {"OS_CLOUD": "c"})["openstack"],
        resolve(["aws"], tmp_path, {"AWS_PROFILE": "cfg", "AWS_CONFIG_FILE": str(
            write(tmp_path / "elsewhere" / "config",
                  "[profile cfg]\naws_access_key_id = AKC\naws_secret_access_key = c\n"))})["aws"],
    ]
    for original in originals:
        stored = original.source.to_json()  # what the state file keeps
        source = original.source
        assert set(stored.values()) <= {None, source.kind, source.path, source.entry}
        again = credentials_from_source(original.provider, stored, {}, home, cwd=tmp_path / "cwd")
        assert again == original
    env = {"AWS_ACCESS_KEY_ID": "AKE", "AWS_SECRET_ACCESS_KEY": "e"}
    assert credentials_from_source("aws", {"kind": "environment"}, env, home).access_key_id == "AKE"


# --- no secret anywhere --------------------------------------------------------------------------


def test_secrets_never_reach_messages_logs_or_reprs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    home = tmp_path / "home"
    secrets_used: list[str] = []

    def fresh() -> str:
        secrets_used.append(secret())
        return secrets_used[-1]

    seen: list[str] = []
    good_auth = write(tmp_path / "good.dat", (
        f"id = aws; type = EC2; username = AKIA{uuid.uuid4().hex[:12]}; password = {fresh()}; "
        f"token = {fresh()}\n"
        f"id = ost; type = OpenStack; host = https://k:5000; username = u; password = {fresh()}; tenant = t\n"
        f"id = app; type = OpenStack; host = https://k:5000; auth_version = 3.x_appcred; "
        f"username = {fresh()}; "
        f"password = {fresh()}\n"
        f"id = tok; type = OpenStack; host = https://k:5000; auth_version = 3.x_oidc_access_token; "
        f"username = egi.eu; password = {fresh()}; domain = p\n"
    ))
    for ids in ({}, {"openstack": "app"}, {"openstack": "tok"}):
        for creds in resolve(["aws", "openstack"], tmp_path, auth=good_auth, ids=ids).values():
            seen += [repr(creds), str(creds), f"{creds}", repr(creds.source), creds.source.describe(),
                     str(creds.source.to_json())]
    env_creds = resolve(["aws", "openstack"], tmp_path, {
        "AWS_ACCESS_KEY_ID": fresh(), "AWS_SECRET_ACCESS_KEY": fresh(), "AWS_SESSION_TOKEN": fresh(),
        "OS_AUTH_URL": "https://k", "OS_APPLICATION_CREDENTIAL_ID": fresh(),
        "OS_APPLICATION_CREDENTIAL_SECRET": fresh()})
    seen += [repr(c) for c in env_creds.values()]

    bad_inputs: list[tuple[str, dict[str, str]]] = [
        (f"id = a; type = EC2; username = AK; password {fresh()}\n", {}),
        (f"id = a; type = EC2; username = AK; password = '{fresh()}\n", {}),
        (f"id = a; type = EC2; username = AK; pasword = {fresh()}\n", {}),
        (f"id = a; type = EC2; password = {fresh()}; password = {fresh()}\n", {}),
        (f"id = a; type = EC2; {fresh()}\n", {}),
        (f"id = a; type = EC2; username = AK; password = {fresh()}; region = x; = {fresh()}\n", {}),
        (f"type = OpenStack; host = h; username = u; password = {fresh()}; tenant = t\n", {}),
        (f"type = OpenStack; host = https://h; username = u; password = {fresh()}; auth_version = 9\n", {}),
    ]
    failures: list[CredentialsError] = []
    for number, (text, env) in enumerate(bad_inputs):
        with pytest.raises(CredentialsError) as info:
            resolve(["aws", "openstack"], tmp_path, env, auth=write(tmp_path / f"bad{number}.dat", text))
        failures.append(info.value)
    write(home / ".aws" / "credentials", f"[default\naws_secret_access_key = {fresh()}\n")
    write(home / ".config" / "openstack" / "clouds.yaml", f"clouds:\n  c: {{auth: {{password: {fresh()}}}}}\n"
                                                          f"  d: [{fresh()}\n")
    env_cases = [
        {"AWS_SECRET_ACCESS_KEY": fresh()},
        {},
        {"OS_AUTH_URL": "https://k", "OS_PASSWORD": fresh(), "OS_USERNAME": "u"},
        {"OS_AUTH_URL": "https://k", "OS_APPLICATION_CREDENTIAL_SECRET": fresh()},
        {"OS_AUTH_URL": "https://k", "OS_ACCESS_TOKEN": fresh(), "OS_PROJECT_ID": "p"},
        {"OS_CLOUD": "c"},
    ]
    for env in env_cases:
        for provider in ("aws", "openstack"):
            openstack_case = bool(env.get("OS_AUTH_URL"))
            if (provider == "aws" and openstack_case) or (provider == "openstack" and "AWS" in str(env)):
                continue
            with pytest.raises(CredentialsError) as info:
                resolve([provider], tmp_path, env)
            failures.append(info.value)
    assert len(failures) >= 15
    seen += [str(f) for f in failures] + [repr(f) for f in failures] + [repr(f.args) for f in failures]
    seen += [record.getMessage() for record in caplog.records]
    seen += [str(record.args) for record in caplog.records]
    everything = "\n".join(seen)
    assert len(secrets_used) >= 25
    for value in secrets_used:
        assert value not in everything


def test_the_state_file_records_where_credentials_came_from_never_their_values(tmp_path: Path) -> None:
    from provisioner.state import StateStore

    key_secret, os_secret = secret(), secret()
    auth = write(tmp_path / "auth.dat",
                 f"id = aws; type = EC2; username = AKIDSTATE; password = {key_secret}\n"
                 f"id = ost; type = OpenStack; host = https://k:5000/v3; username = u; "
                 f"password = {os_secret}; tenant = t\n")
    creds = resolve(["aws", "openstack"], tmp_path, auth=auth)
    db = tmp_path / "state" / "state.db"
    with StateStore.open(db) as store:
        sources = {provider: c.source.to_json() for provider, c in creds.items()}
        dep = store.create_deployment("c", plan={}, credentials=sources)
        store.add_event(dep.id, "credentials", ", ".join(c.source.describe() for c in creds.values()))
        raw = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.is_file())
        for value in (key_secret, os_secret):
            assert value.encode() not in raw
        recorded = store.get("c").credentials
    assert recorded["aws"] == {"kind": "auth-file", "path": str(auth), "entry": "aws"}
    for provider, original in creds.items():
        assert credentials_from_source(provider, recorded[provider], {}, tmp_path / "home") == original


def test_openstack_site_settings_ca_bundle_verify_service_name_and_endpoint(tmp_path: Path) -> None:
    """What a site needs besides the secret: its CA bundle (``OS_CACERT``, ``clouds.yaml``'s
    ``cacert``/``verify``, the auth file's ``cacert``) and the IM auth file's ``service_name`` and
    ``base_url`` (the compute service's name and endpoint)."""
    env = {"OS_AUTH_URL": "https://keystone.example.org:5000/v3", "OS_USERNAME": "u",
           "OS_PASSWORD": secret(), "OS_PROJECT_NAME": "p", "OS_CACERT": "/etc/grid-security/ca.pem"}
    assert resolve(["openstack"], tmp_path, env)["openstack"].cacert == "/etc/grid-security/ca.pem"
    home = tmp_path / "home"
    write(home / ".config" / "openstack" / "clouds.yaml",
          "clouds:\n  site:\n    cacert: /srv/ca.pem\n    verify: false\n    auth:\n"
          "      auth_url: https://k:5000/v3\n      username: u\n      password: pw\n      project_name: p\n")
    site = resolve(["openstack"], tmp_path, {"OS_CLOUD": "site"})["openstack"]
    assert (site.cacert, site.verify) == ("/srv/ca.pem", False)
    auth = write(tmp_path / "auth.dat", f"id = ost; type = OpenStack; host = https://k:5000/v3; "
                                        f"username = u; password = {secret()}; tenant = p; "
                                        f"service_name = nova-waw; base_url = https://nova.example.org/v2.1; "
                                        f"cacert = /srv/ca.pem\n")
    im = resolve_credentials(["openstack"], auth)["openstack"]
    assert (im.service_name, im.base_url, im.cacert, im.verify) == (
        "nova-waw", "https://nova.example.org/v2.1", "/srv/ca.pem", True)


def test_a_credential_as_a_mounted_secrets_files_is_read_without_touching_the_environment(
        tmp_path: Path) -> None:
    """The daemon's pod: one file per variable (as the kubelet writes a Secret: names linked into
    ``..data``), read into the credential and never into ``os.environ``."""
    from provisioner.credentials import credentials_from_directory, credentials_from_source

    data = tmp_path / "..2026_12_07"
    data.mkdir()
    files = {"OS_AUTH_URL": "https://keystone.example.org:5000/v3",
             "OS_AUTH_TYPE": "v3applicationcredential", "OS_APPLICATION_CREDENTIAL_ID": "appcred-id",
             "OS_APPLICATION_CREDENTIAL_SECRET": "appcred-secret\n",
             "OS_REGION_NAME": "RegionOne", "K3S_TOKEN": "K10x::node:y"}
    for name, value in files.items():
        (data / name).write_text(value)
        (tmp_path / name).symlink_to(Path("..data") / name)
    (tmp_path / "..data").symlink_to(data.name)
    before = dict(os.environ)
    creds = credentials_from_source("openstack", {"kind": "directory", "path": str(tmp_path)})
    assert isinstance(creds, OpenStackCredentials) and creds.auth_type == "application_credential"
    assert creds.application_credential_id == "appcred-id" and creds.secret == "appcred-secret"
    assert creds.region == "RegionOne" and creds.source.describe() == str(tmp_path)
    assert dict(os.environ) == before
    (data / "OS_APPLICATION_CREDENTIAL_SECRET").write_text("")
    unset = f"{tmp_path}: OS_APPLICATION_CREDENTIAL_SECRET is not set"
    with pytest.raises(CredentialsError, match=re.escape(unset)):
        credentials_from_directory("openstack", tmp_path)
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "AWS_ACCESS_KEY_ID").write_text("AKIDPODKEY")
    with pytest.raises(CredentialsError, match=re.escape(f"{aws}/AWS_SECRET_ACCESS_KEY: missing or empty")):
        credentials_from_directory("aws", aws)
    (aws / "AWS_SECRET_ACCESS_KEY").write_text("pod-secret\n")
    (aws / "AWS_REGION").write_text("eu-west-1")
    found = credentials_from_directory("aws", aws)
    assert isinstance(found, AwsCredentials) and found.current() == ("AKIDPODKEY", "pod-secret", None)
    assert found.region == "eu-west-1" and "pod-secret" not in repr(found)


def test_without_keys_in_the_mounted_secret_the_daemon_takes_botocores_chain_and_its_renewals(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS keys among the Secret's files: botocore's chain (here its container provider, on a
    loopback server; on the front-end the instance profile through IMDS), whose credentials
    botocore renews before they expire; the driver signs with ``current()``."""
    import datetime
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from provisioner.credentials import credentials_from_directory

    served: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.append(f"ASIAROLEKEY{len(served):04d}")
            expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)  # due for renewal
            body = json.dumps({"AccessKeyId": served[-1], "SecretAccessKey": "role-secret", "Token": "t",
                               "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for name in [k for k in os.environ if k.startswith("AWS_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{server.server_port}/creds")
        secret = tmp_path / "secret"
        secret.mkdir()
        (secret / "AWS_REGION").write_text("eu-west-1")
        (secret / "K3S_TOKEN").write_text("K10x::node:y")
        creds = credentials_from_directory("aws", secret)
        assert isinstance(creds, AwsCredentials) and creds.region == "eu-west-1"
        first = creds.current()[0]
        renewed = creds.current()[0]
        assert renewed != first and renewed == served[-1]
    finally:
        server.shutdown()
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    with pytest.raises(CredentialsError, match=re.escape(f"{empty}: no AWS_ACCESS_KEY_ID and AWS_SECRET_")):
        credentials_from_directory("aws", empty)
