"""Cloud credentials: the IM auth file (``--auth``), else the environment and the usual files.

The result is typed and frozen (``AwsCredentials``, ``OpenStackCredentials``), its
``repr`` masks every secret, and its ``source`` (a ``CredentialSource``) says where it came from in
a form that is safe to store in the state file and lets a later command read the same credential
again (``credentials_from_source``): the values themselves are never stored.

Where credentials come from, per provider the plan uses:

- ``--auth FILE`` given: only that file, in the IM's format, one credential a line::

      # comment
      id = aws; type = EC2; username = AKIA...; password = SECRET; region = eu-west-1
      id = ost; type = OpenStack; host = https://keystone:5000/v3; username = u; password = p;
          tenant = project; domain = Default; auth_version = 3.x_password; region = RegionOne

  Items are ``key = value`` separated by ``;``; a value may be quoted with ``"`` or ``'`` (to hold
  ``;``), ``\\n`` in a value is a newline, ``file(PATH)`` is replaced by that file's content.
  ``type = EC2`` may also give ``host`` (an endpoint override, e.g. a private EC2-compatible API) and
  ``token`` (an STS session token). ``type = OpenStack`` supports ``auth_version`` ``3.x_password``
  (the default here; Keystone v2 is refused), ``3.x_appcred`` (``username`` = the application
  credential id, ``password`` = its secret) and ``3.x_oidc_access_token`` (``username`` = the identity
  provider, ``password`` or ``token`` = the access token, ``tenant`` = the protocol, default
  ``openid``, ``domain`` = the project), as the IM and EGI Federated Cloud sites use them; and
  ``service_region``, ``service_name``/``base_url`` (the compute service's catalog name, or its
  endpoint), ``cacert`` (the site's CA bundle) and ``verify``. Lines of
  other types (``InfrastructureManager``, ``OpenNebula``, ...) are valid and ignored. With several
  lines of one type, the first is used unless ``ids`` names one.
- no ``--auth``: AWS from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (+ ``AWS_SESSION_TOKEN``),
  else the profile ``AWS_PROFILE`` (default ``default``) of ``~/.aws/credentials`` and
  ``~/.aws/config`` (``AWS_SHARED_CREDENTIALS_FILE``/``AWS_CONFIG_FILE`` move them); region from
  ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then the profile; endpoint from ``AWS_ENDPOINT_URL_EC2``,
  ``AWS_ENDPOINT_URL``, then the profile's ``endpoint_url``. OpenStack from ``OS_CLOUD`` (an entry of
  ``clouds.yaml``: ``$OS_CLIENT_CONFIG_FILE``, ``./clouds.yaml``, ``~/.config/openstack/``,
  ``/etc/openstack/``, merged with a ``secure.yaml`` beside it), else the ``OS_*`` variables when
  ``OS_AUTH_URL`` is set, else the only cloud of a ``clouds.yaml``.

Anything malformed or missing is a ``CredentialsError`` (exit 2, before anything is created) that
names the file, line or variable; no message, log record or repr ever contains a secret value.
"""

from __future__ import annotations

import configparser
import dataclasses
import logging
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from provisioner.errors import CredentialsError

log = logging.getLogger(__name__)



def warn_plain_http(auth_url: str, where: str) -> None:
    """A Keystone URL without TLS sends the password (or token) in clear to whoever is on the path;
    only a loopback address keeps it on this machine."""
    parsed = urllib.parse.urlparse(auth_url)
    if parsed.scheme == "http" and parsed.hostname not in ("localhost", "127.0.0.1", "::1"):
        log.warning("%s: the Keystone URL %s is not https: the OpenStack password or token travels "
                    "unencrypted", where, auth_url)


SourceKind = Literal["auth-file", "environment", "aws-profile", "aws-sdk-chain", "clouds.yaml", "directory"]
OpenStackAuthType = Literal["password", "application_credential", "oidc_access_token"]
SYSTEM_OPENSTACK_DIR = Path("/etc/openstack")

# --- where a credential came from ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CredentialSource:
    """Where a credential came from; safe to store and to print (no values)."""

    kind: SourceKind
    path: str | None = None
    """The auth file, ``~/.aws/credentials`` or ``clouds.yaml`` read."""
    entry: str | None = None
    """The auth file line's ``id`` (or ``line N`` when it has none), the AWS profile or the cloud."""

    def describe(self) -> str:
        if self.kind == "environment":
            return "environment"
        if self.kind == "aws-sdk-chain":
            return f"the AWS SDK's credential chain [{self.entry or 'default'}]"
        return f"{self.path} [{self.entry}]" if self.entry else str(self.path)

    def to_json(self) -> dict[str, str | None]:
        return {"kind": self.kind, "path": self.path, "entry": self.entry}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CredentialSource:
        return cls(kind=data["kind"], path=data.get("path"), entry=data.get("entry"))


def _mask(value: str | None, keep: int = 0) -> str | None:
    if value is None:
        return None
    if keep and len(value) > keep * 3:
        return f"…{value[-keep:]}"
    return "***"


@dataclasses.dataclass(frozen=True, repr=False)
class AwsCredentials:
    """EC2 credentials. ``region`` and ``endpoint_url`` are None when the source gives none."""

    provider: ClassVar[str] = "aws"
    access_key_id: str
    secret_access_key: str
    source: CredentialSource
    session_token: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    """An EC2-compatible endpoint instead of AWS's (the auth file's ``host``)."""
    refreshable: Any = dataclasses.field(default=None, compare=False)
    """botocore credentials that renew themselves before they expire (SSO, an assumed role, web
    identity, ``credential_process``, the instance's role); the key fields hold their first values."""

    def current(self) -> tuple[str, str, str | None]:
        """The key id, secret and session token to sign with now (renewed by botocore when due)."""
        if self.refreshable is None:
            return self.access_key_id, self.secret_access_key, self.session_token
        frozen = self.refreshable.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token

    def __repr__(self) -> str:
        return (f"AwsCredentials(access_key_id={_mask(self.access_key_id, 4)!r}, secret_access_key='***', "
                f"session_token={_mask(self.session_token)!r}, region={self.region!r}, "
                f"endpoint_url={self.endpoint_url!r}, source={self.source.describe()!r})")

    __str__ = __repr__


@dataclasses.dataclass(frozen=True, repr=False)
class OpenStackCredentials:
    """Keystone v3 credentials: a password, an application credential or an OIDC access token."""

    provider: ClassVar[str] = "openstack"
    auth_url: str
    auth_type: OpenStackAuthType
    secret: str
    """The password, the application credential's secret or the OIDC access token."""
    source: CredentialSource
    username: str | None = None
    application_credential_id: str | None = None
    project_name: str | None = None
    project_id: str | None = None
    user_domain_name: str = "Default"
    project_domain_name: str | None = None
    project_domain_id: str | None = None
    identity_provider: str | None = None
    protocol: str = "openid"
    region: str | None = None
    service_name: str | None = None
    """The compute service's name in the catalog when the site has several (the IM's ``service_name``)."""
    base_url: str | None = None
    """The compute endpoint, bypassing the catalog (the IM's ``base_url``)."""
    cacert: str | None = None
    """A CA bundle to verify the site's TLS certificate with (``OS_CACERT``, ``clouds.yaml`` ``cacert``),
    for sites whose CA (IGTF, a national one) is not in the system store."""
    verify: bool = True

    def __repr__(self) -> str:
        return (f"OpenStackCredentials(auth_url={self.auth_url!r}, auth_type={self.auth_type!r}, "
                f"username={self.username!r}, application_credential_id="
                f"{_mask(self.application_credential_id, 4)!r}, secret='***', "
                f"project_name={self.project_name!r}, project_id={self.project_id!r}, "
                f"user_domain_name={self.user_domain_name!r}, identity_provider={self.identity_provider!r}, "
                f"region={self.region!r}, source={self.source.describe()!r})")

    __str__ = __repr__

    def libcloud_args(self) -> tuple[str, str, dict[str, Any]]:
        """``(key, secret, kwargs)`` for libcloud's OpenStack driver, so each driver maps the three
        auth types the same way (libcloud wants the Keystone root URL, without ``/v3``).

        libcloud scopes a password token by project *name* and the project's domain *id*
        (``default`` unless ``project_domain_id`` or a non-default ``project_domain_name`` says
        otherwise); an OIDC token is scoped to ``project_id`` (or the first project it may use)."""
        auth_url = re.sub(r"/v3/?$", "", self.auth_url.rstrip("/"))
        kwargs: dict[str, Any] = {"ex_force_auth_url": auth_url}
        if self.region:
            kwargs["ex_force_service_region"] = self.region
        if self.auth_type == "application_credential":
            kwargs["ex_force_auth_version"] = "3.x_appcred"
            return str(self.application_credential_id), self.secret, kwargs
        if self.auth_type == "oidc_access_token":
            kwargs["ex_force_auth_version"] = "3.x_oidc_access_token"
            kwargs["ex_tenant_name"] = self.protocol  # libcloud carries the protocol in tenant_name
            kwargs["ex_domain_name"] = self.project_id or self.project_name or "Default"
            return str(self.identity_provider), self.secret, kwargs
        kwargs["ex_force_auth_version"] = "3.x_password"
        kwargs["ex_tenant_name"] = self.project_name
        kwargs["ex_domain_name"] = self.user_domain_name
        if self.project_domain_id:
            kwargs["ex_tenant_domain_id"] = self.project_domain_id
        elif self.project_domain_name and self.project_domain_name.lower() != "default":
            kwargs["ex_tenant_domain_id"] = self.project_domain_name
        return str(self.username), self.secret, kwargs


Credentials = AwsCredentials | OpenStackCredentials
_CLOUD_PROVIDERS = ("aws", "openstack")

# --- region precedence ---------------------------------------------------------------------------


def choose_region(explicit_input: str | None, credential_region: str | None,
                  template_default: str | None) -> str | None:
    """An input given with ``-i`` wins, then the credential's ``region`` (the auth file's,
    or the environment's when there is no auth file), then the template's default."""
    for candidate in (explicit_input, credential_region, template_default):
        if candidate:
            return candidate
    return None


# --- the IM auth file ----------------------------------------------------------------------------

_TYPES = {"ec2": "aws", "openstack": "openstack"}
_EC2_KEYS = {"id", "type", "username", "password", "region", "host", "token"}
_OPENSTACK_KEYS = {"id", "type", "host", "username", "password", "tenant", "domain", "auth_version",
                   "region", "service_region", "token", "tenant_domain_id", "project_id", "service_name",
                   "base_url", "cacert", "verify"}
_IM_IGNORED_KEYS = {"api_version", "network_url", "image_url", "volume_url",
                    "auth_token", "microversion", "verify"}


@dataclasses.dataclass(frozen=True, repr=False)
class AuthEntry:
    """One line of an auth file. ``values`` may hold secrets: never log or print it."""

    line: int
    values: Mapping[str, str]

    @property
    def id(self) -> str | None:
        return self.values.get("id")

    @property
    def type(self) -> str:
        return self.values["type"]

    @property
    def label(self) -> str:
        return self.id or f"line {self.line}"

    def __repr__(self) -> str:
        return f"AuthEntry(line={self.line}, id={self.id!r}, type={self.values.get('type')!r})"


_BLANK = " \t\r\f\v"


def _split_items(text: str, where: str) -> list[str]:
    """Split a line on ``;`` outside quotes, keeping the quotes (``_unquote`` drops them later)."""
    items: list[str] = []
    current: list[str] = []
    quote: str | None = None
    for char in text:
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == ";":
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote:
        raise CredentialsError(f"{where}: a {quote} quote is never closed")
    items.append("".join(current))
    return [item for item in items if item.strip(_BLANK)]


def _unquote(raw: str) -> str:
    """Drop the quote characters (as the IM does: ``'a;b'`` and ``"it's"`` are values); blanks
    inside quotes are kept, blanks around the value were already stripped."""
    out: list[str] = []
    quote: str | None = None
    for char in raw:
        if quote:
            if char == quote:
                quote = None
            else:
                out.append(char)
        elif char in "\"'":
            quote = char
        else:
            out.append(char)
    return "".join(out)


def parse_auth_text(text: str, path: str) -> list[AuthEntry]:
    """Parse auth-file text; ``path`` only names the file in errors."""
    entries = []
    # split on "\n" only: str.splitlines() would also break a password at \x85 or \u2028
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(_BLANK)
        if not line or line.startswith("#"):
            continue
        where = f"{path} line {number}"
        values: dict[str, str] = {}
        for index, item in enumerate(_split_items(line, where), start=1):
            key, sep, value = item.partition("=")
            key = key.strip(_BLANK)
            if not sep or not key:
                raise CredentialsError(
                    f"{where}: item {index} is not 'key = value' (items are separated by ';'; "
                    "quote a value that holds ';')")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise CredentialsError(f"{where}: item {index} has no valid key before '='")
            if key in values:
                raise CredentialsError(f"{where}: key {key!r} is given twice")
            values[key] = _expand_value(_unquote(value.strip(_BLANK)), where, key)
        if "type" not in values:
            raise CredentialsError(f"{where}: no 'type' (e.g. type = EC2 or type = OpenStack)")
        entries.append(AuthEntry(number, values))
    return entries


def _expand_value(value: str, where: str, key: str) -> str:
    match = re.fullmatch(r"file\((.+)\)", value)
    if match:
        target = Path(match.group(1).strip()).expanduser()
        try:
            return target.read_text()
        except OSError as exc:
            raise CredentialsError(f"{where}: {key} = file({target}): {exc.strerror}") from None
    return value.replace("\\n", "\n")


def read_auth_file(path: Path) -> list[AuthEntry]:
    """Read and parse an IM auth file; ``CredentialsError`` naming the path if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CredentialsError(f"{path}: auth file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CredentialsError(f"{path}: cannot read the auth file: {reason}") from None
    try:
        if path.stat().st_mode & 0o077:
            log.warning("%s: the auth file is readable by other users; chmod 600 it", path)
    except OSError:
        pass
    return parse_auth_text(text, str(path))


def _from_auth_entry(entry: AuthEntry, path: Path) -> Credentials:
    values = entry.values
    provider = _TYPES[values["type"].lower()]
    where = f"{path} line {entry.line}" + (f" ({entry.id})" if entry.id else "")
    source = CredentialSource("auth-file", str(path), entry.label)
    allowed = _EC2_KEYS if provider == "aws" else _OPENSTACK_KEYS
    for key in values:
        if key in _IM_IGNORED_KEYS:
            log.warning("%s: key %r is not used by oscar-deploy; ignored", where, key)
        elif key not in allowed:
            raise CredentialsError(f"{where}: unknown key {key!r} for type {values['type']} "
                                   f"(known: {', '.join(sorted(allowed))})")

    def need(key: str, meaning: str) -> str:
        if not values.get(key):
            raise CredentialsError(f"{where}: missing {key} ({meaning})")
        return values[key]

    if provider == "aws":
        return AwsCredentials(
            access_key_id=need("username", "the access key id"),
            secret_access_key=need("password", "the secret access key"),
            session_token=values.get("token") or None,
            region=values.get("region") or None,
            endpoint_url=values.get("host") or None,
            source=source,
        )
    auth_url = need("host", "the Keystone URL, e.g. https://keystone:5000/v3")
    if not re.match(r"^https?://", auth_url):
        raise CredentialsError(f"{where}: host must be the Keystone URL (http:// or https://...)")
    warn_plain_http(auth_url, where)
    region = values.get("region") or values.get("service_region") or None
    version = values.get("auth_version", "3.x_password")
    site = {"region": region, "service_name": values.get("service_name") or None,
            "base_url": values.get("base_url") or None, "cacert": values.get("cacert") or None,
            "verify": str(values.get("verify", "true")).lower() not in ("false", "0", "no")}
    if version == "3.x_password":
        return OpenStackCredentials(
            auth_url=auth_url, auth_type="password",
            username=need("username", "the OpenStack user"),
            secret=need("password", "the user's password"),
            project_name=need("tenant", "the project name"),
            project_id=values.get("project_id") or None,
            user_domain_name=values.get("domain") or "Default",
            project_domain_id=values.get("tenant_domain_id") or None,  # as the IM: else "default"
            source=source, **site,
        )
    if version == "3.x_appcred":
        return OpenStackCredentials(
            auth_url=auth_url, auth_type="application_credential",
            application_credential_id=need("username", "the application credential id"),
            secret=need("password", "the application credential secret"),
            project_name=values.get("tenant") or None,
            source=source, **site,
        )
    if version == "3.x_oidc_access_token":
        token = values.get("password") or values.get("token")
        if not token:
            raise CredentialsError(f"{where}: missing password or token (the OIDC access token)")
        return OpenStackCredentials(
            auth_url=auth_url, auth_type="oidc_access_token", secret=token,
            identity_provider=need("username", "the identity provider, e.g. egi.eu"),
            protocol=values.get("tenant") or "openid",
            project_id=need("domain", "the project to scope the token to"),
            source=source, **site,
        )
    if version.startswith("2.0"):
        raise CredentialsError(f"{where}: auth_version {version} (Keystone v2) is not supported; "
                               "use 3.x_password, 3.x_appcred or 3.x_oidc_access_token")
    raise CredentialsError(f"{where}: unknown auth_version {version!r} "
                           "(known: 3.x_password, 3.x_appcred, 3.x_oidc_access_token)")


def auth_file_credentials(path: Path) -> list[tuple[AuthEntry, Credentials]]:
    """Every EC2 and OpenStack line of an IM auth file, checked and built (so a malformed file is
    reported even when the broken line is not the one a plan uses); other types are skipped."""
    return [(entry, _from_auth_entry(entry, path)) for entry in read_auth_file(path)
            if entry.type.lower() in _TYPES]


# Type names users write for a provider that the IM auth file spells otherwise (lower case).
_TYPE_MISSPELLINGS = {"aws": ("aws", "amazon", "amazonec2", "amazon_ec2", "aws_ec2", "awsec2"),
                      "openstack": ("os", "open_stack", "open-stack", "openstack3", "nova", "keystone")}


def _near_miss_types(path: Path, provider: str) -> str:
    """``"; line 2 says type = AWS: ..."`` for lines whose type means ``provider`` in other words."""
    expected = "EC2" if provider == "aws" else "OpenStack"
    try:
        entries = read_auth_file(path)
    except CredentialsError:
        return ""
    near = [e for e in entries if e.type.lower().replace(" ", "") in _TYPE_MISSPELLINGS[provider]]
    return "".join(f"; line {e.line} says type = {e.type}: the IM auth file calls it type = {expected}"
                   for e in near)


def _pick(path: Path, built: list[tuple[AuthEntry, Credentials]], provider: str,
          entry_id: str | None) -> Credentials:
    expected = "EC2" if provider == "aws" else "OpenStack"
    if entry_id is not None:
        named = [(e, c) for e, c in built if e.label == entry_id]
        if not named:
            raise CredentialsError(f"{path}: no EC2 or OpenStack credential with id {entry_id!r}")
        if named[0][1].provider != provider:
            raise CredentialsError(f"{path}: credential {entry_id!r} is of type {named[0][0].type}, "
                                   f"but {provider} needs type = {expected}")
        return named[0][1]
    matching = [(e, c) for e, c in built if c.provider == provider]
    if not matching:
        raise CredentialsError(f"{path}: no credential for {provider} (the plan uses it); add a line "
                               f"with type = {expected}{_near_miss_types(path, provider)}")
    if len(matching) > 1:
        log.info("%s: %d %s credentials; using %s", path, len(matching), expected, matching[0][0].label)
    return matching[0][1]


def credentials_from_auth_file(path: Path, provider: str, entry_id: str | None = None) -> Credentials:
    """The credential for ``provider`` in an IM auth file: the line with ``id = entry_id`` if
    given, else the first line of the provider's type."""
    return _pick(path, auth_file_credentials(path), provider, entry_id)


# --- the environment: AWS ------------------------------------------------------------------------


def _read_ini(path: Path) -> configparser.ConfigParser | None:
    """Read ``~/.aws/credentials``-style INI; errors name the line, never its content."""
    parser = configparser.ConfigParser(interpolation=None, default_section="__none__")
    if not path.is_file():
        return None
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None)
        if line is None and getattr(exc, "errors", None):
            line = exc.errors[0][0]
        at = f" line {line}" if line else ""
        raise CredentialsError(f"{path}{at}: not valid INI syntax ({type(exc).__name__})") from None
    except (OSError, UnicodeDecodeError):
        raise CredentialsError(f"{path}: cannot be read") from None
    return parser


def _profile_section(parser: configparser.ConfigParser | None, profile: str,
                     config_style: bool) -> dict[str, str]:
    """A profile's keys: ``[NAME]`` in the credentials file, ``[profile NAME]`` in the config file."""
    if parser is None:
        return {}
    names = [profile] if not config_style or profile == "default" else [f"profile {profile}", profile]
    for name in names:
        if parser.has_section(name):
            return dict(parser.items(name))
    return {}


def _aws_paths(env: Mapping[str, str], home: Path) -> tuple[Path, Path]:
    creds = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials").expanduser()
    config = Path(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config").expanduser()
    return creds, config


def _aws_profile_credentials(path: Path, profile: str, config_style: bool, region: str | None,
                             endpoint: str | None) -> AwsCredentials | None:
    section = _profile_section(_read_ini(path), profile, config_style)
    key_id, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
    if not (key_id or secret):
        return None
    if not (key_id and secret):
        raise CredentialsError(f"{path} [{profile}]: needs both aws_access_key_id and aws_secret_access_key")
    return AwsCredentials(key_id, secret, CredentialSource("aws-profile", str(path), profile),
                          session_token=section.get("aws_session_token") or None,
                          region=region, endpoint_url=endpoint)


def _aws_from_env(env: Mapping[str, str], home: Path, profile_source: CredentialSource | None = None,
                  ) -> AwsCredentials:
    """AWS credentials as the AWS CLI finds them; ``profile_source`` re-reads one recorded profile."""
    key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    if profile_source is not None:
        profile = profile_source.entry or "default"
    creds_path, config_path = _aws_paths(env, home)
    config_section = _profile_section(_read_ini(config_path), profile, config_style=True)
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or config_section.get("region") or None
    endpoint = (env.get("AWS_ENDPOINT_URL_EC2") or env.get("AWS_ENDPOINT_URL")
                or config_section.get("endpoint_url") or None)

    if profile_source is not None and profile_source.kind == "aws-profile" and profile_source.path:
        path = Path(profile_source.path)
        # config style looks for [profile NAME] then [NAME]: right for either file
        found = _aws_profile_credentials(path, profile, True, region, endpoint)
        if found is None:
            raise CredentialsError(f"{path} [{profile}]: the profile the deployment used has no keys now")
        return found
    if profile_source is not None and profile_source.kind == "aws-sdk-chain":
        chained = _aws_sdk_chain(profile, creds_path, config_path, region, endpoint)
        if chained is None:
            raise CredentialsError(f"the AWS SDK's credential chain [{profile}] gives no credentials now")
        return chained

    if key_id or secret:
        if not (key_id and secret):
            present, missing = (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if key_id
                                else ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"))
            raise CredentialsError(f"environment: {present} is set but {missing} is not")
        return AwsCredentials(key_id, secret, CredentialSource("environment"),
                              session_token=env.get("AWS_SESSION_TOKEN") or None,
                              region=region, endpoint_url=endpoint)

    for path, config_style in ((creds_path, False), (config_path, True)):
        found = _aws_profile_credentials(path, profile, config_style, region, endpoint)
        if found is not None:
            return found
    chained = _aws_sdk_chain(profile, creds_path, config_path, region, endpoint)
    if chained is not None:
        return chained
    if env.get("AWS_PROFILE"):
        raise CredentialsError(f"environment: AWS_PROFILE={profile} but neither {creds_path} nor "
                               f"{config_path} has keys for that profile")
    raise CredentialsError(
        "no AWS credentials found (the plan uses aws): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        f"or AWS_PROFILE with {creds_path}, or pass --auth FILE with a 'type = EC2' line")


def _aws_sdk_chain(profile: str, creds_path: Path, config_path: Path, region: str | None,
                   endpoint: str | None) -> AwsCredentials | None:
    """Credentials from botocore's own provider chain for ``profile``, after the static keys were
    looked for: SSO (``sso_session``), ``role_arn`` with ``source_profile`` or
    ``credential_source``, ``credential_process``, web identity (``AWS_WEB_IDENTITY_TOKEN_FILE``,
    as on EKS), the container's and the instance's role (IMDS). They renew themselves: ``current()``
    asks botocore, which refreshes them ahead of their expiry. None when botocore finds none (or
    is not installed)."""
    try:
        import botocore.exceptions
        import botocore.session
    except ImportError:  # pragma: no cover - a dependency
        return None
    session = botocore.session.Session()
    session.set_config_variable("credentials_file", str(creds_path))
    session.set_config_variable("config_file", str(config_path))
    if profile != "default" or session.full_config.get("profiles", {}).get(profile) is not None:
        session.set_config_variable("profile", profile)
    try:
        found = session.get_credentials()
    except botocore.exceptions.ProfileNotFound:
        return None
    except botocore.exceptions.BotoCoreError as exc:  # e.g. an SSO token that expired, a process that failed
        raise CredentialsError(f"AWS credentials of profile {profile}: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0]}") from None
    if found is None:
        return None
    frozen = found.get_frozen_credentials()
    log.debug("AWS credentials from botocore's chain: %s", getattr(found, "method", "?"))
    return AwsCredentials(frozen.access_key, frozen.secret_key,
                          CredentialSource("aws-sdk-chain", str(config_path), profile),
                          session_token=frozen.token, region=region or session.get_config_variable("region"),
                          endpoint_url=endpoint, refreshable=found)


# --- the environment: OpenStack ------------------------------------------------------------------


def _auth_type(raw: str | None, has_appcred: bool, has_token: bool, where: str) -> OpenStackAuthType:
    value = (raw or "").lower().replace("-", "").replace("_", "")
    if not value:
        return ("application_credential" if has_appcred else "oidc_access_token" if has_token
                else "password")
    if value in ("password", "v3password"):
        return "password"
    if value in ("v3applicationcredential", "applicationcredential"):
        return "application_credential"
    if value in ("v3oidcaccesstoken", "oidcaccesstoken"):
        return "oidc_access_token"
    raise CredentialsError(f"{where}: auth type {raw!r} is not supported (use password, "
                           "v3applicationcredential or v3oidcaccesstoken)")


def _openstack_from_fields(
    fields: Mapping[str, Any], auth_type_raw: str | None, region: str | None,
    source: CredentialSource, where: str, names: Mapping[str, str],
) -> OpenStackCredentials:
    """Build OpenStack credentials from ``clouds.yaml``-style field names; ``names`` maps a field to
    what the user wrote (a variable or a key) for error messages."""

    def get(field: str) -> str | None:
        value = fields.get(field)
        return str(value) if value not in (None, "") else None

    def need(field: str) -> str:
        value = get(field)
        if value is None:
            raise CredentialsError(f"{where}: {names.get(field, field)} is not set")
        return value

    auth_type = _auth_type(auth_type_raw, bool(get("application_credential_id")
                                              or get("application_credential_secret")),
                           bool(get("access_token")), where)
    auth_url = need("auth_url")
    warn_plain_http(auth_url, where)
    common: dict[str, Any] = {"auth_url": auth_url, "region": region, "source": source,
                              "cacert": get("cacert"), "verify": get("verify") not in ("False", "false", "0")}
    if auth_type == "application_credential":
        return OpenStackCredentials(auth_type=auth_type, secret=need("application_credential_secret"),
                                    application_credential_id=need("application_credential_id"),
                                    project_name=get("project_name"), **common)
    if auth_type == "oidc_access_token":
        if not (get("project_id") or get("project_name")):
            need("project_id")
        return OpenStackCredentials(auth_type=auth_type, secret=need("access_token"),
                                    identity_provider=need("identity_provider"),
                                    protocol=get("protocol") or "openid",
                                    project_id=get("project_id"), project_name=get("project_name"),
                                    **common)
    if not (get("project_name") or get("project_id")):
        need("project_name")
    return OpenStackCredentials(
        auth_type="password", username=need("username"), secret=need("password"),
        project_name=get("project_name"), project_id=get("project_id"),
        user_domain_name=get("user_domain_name") or get("domain_name") or "Default",
        project_domain_name=get("project_domain_name") or get("domain_name"),
        project_domain_id=get("project_domain_id"), **common)


_OS_ENV = {
    "auth_url": "OS_AUTH_URL", "username": "OS_USERNAME", "password": "OS_PASSWORD",
    "project_name": "OS_PROJECT_NAME", "project_id": "OS_PROJECT_ID",
    "user_domain_name": "OS_USER_DOMAIN_NAME", "project_domain_name": "OS_PROJECT_DOMAIN_NAME",
    "project_domain_id": "OS_PROJECT_DOMAIN_ID", "domain_name": "OS_DOMAIN_NAME",
    "application_credential_id": "OS_APPLICATION_CREDENTIAL_ID",
    "application_credential_secret": "OS_APPLICATION_CREDENTIAL_SECRET",
    "access_token": "OS_ACCESS_TOKEN", "identity_provider": "OS_IDENTITY_PROVIDER",
    "protocol": "OS_PROTOCOL", "cacert": "OS_CACERT",
}


def clouds_yaml_paths(env: Mapping[str, str], home: Path, cwd: Path,
                      system_dir: Path = SYSTEM_OPENSTACK_DIR) -> list[Path]:
    """Where ``clouds.yaml`` is looked for, first found wins (openstacksdk's order)."""
    if env.get("OS_CLIENT_CONFIG_FILE"):
        return [Path(env["OS_CLIENT_CONFIG_FILE"]).expanduser()]
    return [cwd / "clouds.yaml", home / ".config" / "openstack" / "clouds.yaml", system_dir / "clouds.yaml"]


def _load_yaml_clouds(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" line {mark.line + 1}" if mark is not None else ""
        # exc.problem names the kind of mistake; the rest of the error quotes the file: left out
        raise CredentialsError(f"{path}{at}: not valid YAML ({exc.problem})") from None
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        raise CredentialsError(f"{path}: cannot be read as YAML") from None
    clouds = (data or {}).get("clouds") if isinstance(data, dict) else None
    if not isinstance(clouds, dict):
        raise CredentialsError(f"{path}: expected a top-level 'clouds:' mapping")
    return clouds


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _openstack_from_clouds_yaml(path: Path, cloud: str | None) -> OpenStackCredentials:
    clouds = _load_yaml_clouds(path)
    secure = path.with_name("secure.yaml")
    if secure.is_file():
        clouds = _merge(clouds, _load_yaml_clouds(secure))
    if cloud is None:
        if len(clouds) != 1:
            raise CredentialsError(f"{path}: {len(clouds)} clouds ({', '.join(map(str, clouds))}); "
                                   "choose one with OS_CLOUD")
        cloud = next(iter(clouds))
    entry = clouds.get(cloud)
    if not isinstance(entry, Mapping):
        raise CredentialsError(f"{path}: no cloud named {cloud!r} (known: {', '.join(map(str, clouds))})")
    auth = entry.get("auth") or {}
    if not isinstance(auth, Mapping):
        raise CredentialsError(f"{path}: clouds.{cloud}.auth must be a mapping")
    region = entry.get("region_name")
    regions = entry.get("regions")
    if not region and isinstance(regions, list) and regions:
        first = regions[0]
        region = first.get("name") if isinstance(first, Mapping) else first
    auth = {**auth, **{k: entry[k] for k in ("cacert", "verify") if k in entry}}  # entry-level TLS keys
    return _openstack_from_fields(auth, entry.get("auth_type"), str(region) if region else None,
                                  CredentialSource("clouds.yaml", str(path), cloud),
                                  f"{path} [{cloud}]", {k: f"auth.{k}" for k in _OS_ENV})


def _openstack_from_env(env: Mapping[str, str], home: Path, cwd: Path,
                        system_dir: Path) -> OpenStackCredentials:
    paths = clouds_yaml_paths(env, home, cwd, system_dir)
    found = next((p for p in paths if p.is_file()), None)
    if env.get("OS_CLOUD"):
        if found is None:
            raise CredentialsError(f"environment: OS_CLOUD={env['OS_CLOUD']} but no clouds.yaml was found "
                                   f"(looked in {', '.join(map(str, paths))})")
        return _openstack_from_clouds_yaml(found, env["OS_CLOUD"])
    if env.get("OS_AUTH_URL"):
        fields = {field: env.get(var) for field, var in _OS_ENV.items()}
        fields["project_name"] = fields["project_name"] or env.get("OS_TENANT_NAME")
        return _openstack_from_fields(fields, env.get("OS_AUTH_TYPE"), env.get("OS_REGION_NAME") or None,
                                      CredentialSource("environment"), "environment", _OS_ENV)
    if found is not None:
        return _openstack_from_clouds_yaml(found, None)
    raise CredentialsError(
        "no OpenStack credentials found (the plan uses openstack): source your openrc (OS_AUTH_URL, "
        "OS_USERNAME, ...), set OS_CLOUD with a clouds.yaml, or pass --auth FILE with a "
        "'type = OpenStack' line")


# --- the entry points ----------------------------------------------------------------------------


def resolve_credentials(
    providers_needed: Iterable[str],
    auth_file: str | Path | None = None,
    env: Mapping[str, str] = os.environ,
    home: Path | None = None,
    *,
    cwd: Path | None = None,
    ids: Mapping[str, str] | None = None,
    system_openstack_dir: Path = SYSTEM_OPENSTACK_DIR,
) -> dict[str, Credentials]:
    """The credentials of every cloud provider the plan uses (``fleet`` needs none), by provider.

    With ``auth_file`` only that file is read (``ids`` may pick a line per provider by its ``id``);
    without it, the environment and the usual files. Raises ``CredentialsError`` for the first
    provider whose credentials are missing or malformed, before anything is created.
    """
    home = Path.home() if home is None else home
    cwd = Path.cwd() if cwd is None else cwd
    ids = ids or {}
    result: dict[str, Credentials] = {}
    needed = [p for p in dict.fromkeys(providers_needed) if p in _CLOUD_PROVIDERS]
    auth_path = Path(auth_file).expanduser() if auth_file is not None else None
    from_file = auth_file_credentials(auth_path) if auth_path is not None and needed else []
    for provider in needed:
        if auth_path is not None:
            creds = _pick(auth_path, from_file, provider, ids.get(provider))
        elif provider == "aws":
            creds = _aws_from_env(env, home)
        else:
            creds = _openstack_from_env(env, home, cwd, system_openstack_dir)
        log.debug("credentials for %s: %s", provider, creds.source.describe())
        result[provider] = creds
    return result


def credentials_from_source(
    provider: str,
    source: CredentialSource | Mapping[str, Any],
    env: Mapping[str, str] = os.environ,
    home: Path | None = None,
    *,
    cwd: Path | None = None,
    system_openstack_dir: Path = SYSTEM_OPENSTACK_DIR,
) -> Credentials:
    """Read again the credential a deployment recorded (``destroy``, ``scale``: the state file keeps
    only its source)."""
    if not isinstance(source, CredentialSource):
        source = CredentialSource.from_json(source)
    home = Path.home() if home is None else home
    cwd = Path.cwd() if cwd is None else cwd
    if provider not in _CLOUD_PROVIDERS:
        raise CredentialsError(f"{provider} takes no cloud credentials")
    if source.kind == "auth-file" and source.path:
        return credentials_from_auth_file(Path(source.path), provider, source.entry)
    if source.kind in ("aws-profile", "aws-sdk-chain") and provider == "aws":
        return _aws_from_env(env, home, profile_source=source)
    if source.kind == "directory" and source.path:
        return credentials_from_directory(provider, Path(source.path))
    if source.kind == "clouds.yaml" and source.path and provider == "openstack":
        return _openstack_from_clouds_yaml(Path(source.path), source.entry)
    creds = resolve_credentials([provider], None, env, home, cwd=cwd,
                                system_openstack_dir=system_openstack_dir)
    return creds[provider]


def credentials_from_directory(provider: str, directory: Path) -> Credentials:
    """A credential given as files named after its environment variables (``AWS_ACCESS_KEY_ID``,
    ``OS_APPLICATION_CREDENTIAL_SECRET``, ...), as a Kubernetes Secret mounted in the daemon's pod
    gives it: read into a mapping, never into the process's environment, so the commands and ssh the
    daemon runs inherit none of it. AWS without keys there: botocore's chain (the instance's role
    through IMDS, renewed before it expires). Errors name the file."""
    try:
        names = sorted(p.name for p in directory.iterdir()
                       if p.name.startswith(("AWS_", "OS_")) and p.is_file())
        files = {name: (directory / name).read_text(encoding="utf-8").strip() for name in names}
    except OSError as error:
        raise CredentialsError(f"{directory}: cannot read the cloud credential: "
                               f"{error.strerror or error}") from None
    files = {name: value for name, value in files.items() if value}
    source = CredentialSource("directory", str(directory))
    if provider == "openstack":
        return _openstack_from_fields({field: files.get(var) for field, var in _OS_ENV.items()},
                                      files.get("OS_AUTH_TYPE"), files.get("OS_REGION_NAME"), source,
                                      str(directory), _OS_ENV)
    if provider != "aws":
        raise CredentialsError(f"{provider} takes no cloud credentials")
    key_id, secret = files.get("AWS_ACCESS_KEY_ID"), files.get("AWS_SECRET_ACCESS_KEY")
    region = files.get("AWS_REGION") or files.get("AWS_DEFAULT_REGION")
    endpoint = files.get("AWS_ENDPOINT_URL_EC2") or files.get("AWS_ENDPOINT_URL")
    if key_id or secret:
        if not (key_id and secret):
            missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
            raise CredentialsError(f"{directory / missing}: missing or empty (the other key of the pair "
                                   "is given)")
        return AwsCredentials(key_id, secret, source, session_token=files.get("AWS_SESSION_TOKEN"),
                              region=region, endpoint_url=endpoint)
    chained = _aws_sdk_chain(files.get("AWS_PROFILE") or "default", directory / ".aws-credentials",
                             directory / ".aws-config", region, endpoint)
    if chained is None:
        raise CredentialsError(f"{directory}: no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY files, and no "
                               "role from the AWS SDK's chain (an instance profile through IMDS)")
    return chained
