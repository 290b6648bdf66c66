"""The Kubernetes API test server over TLS with a bearer token, as a pod's client meets the API."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.harness.kube.tls import ServingCert


@pytest.fixture
def tls_api(kube_api_factory: Any, tmp_path: Path) -> Any:
    return kube_api_factory(serving=ServingCert.create(tmp_path / "sa"))


def test_the_client_lists_and_watches_over_tls_with_the_token(tls_api: Any) -> None:
    assert tls_api.url.startswith("https://127.0.0.1:")
    tls_api.register_node("w1")
    with client.ApiClient(tls_api.configuration()) as api:
        v1 = client.CoreV1Api(api)
        assert [n.metadata.name for n in v1.list_node().items] == ["w1"]
        events = watch.Watch().stream(v1.list_node, resource_version="0", timeout_seconds=1)
        assert next(events)["object"].metadata.name == "w1"


def test_without_the_token_the_answer_is_401_unauthorized(tls_api: Any) -> None:
    config = tls_api.configuration()
    config.api_key = {"authorization": "Bearer not-the-token"}
    with client.ApiClient(config) as api, pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).list_node()
    assert caught.value.status == 401 and '"reason":"Unauthorized"' in caught.value.body


def test_a_client_that_does_not_trust_the_ca_refuses_the_server(tls_api: Any) -> None:
    config = tls_api.configuration()
    config.ssl_ca_cert = None
    config.retries = 0
    with client.ApiClient(config) as api, pytest.raises(urllib3.exceptions.MaxRetryError) as caught:
        client.CoreV1Api(api).list_node()
    assert isinstance(caught.value.reason, urllib3.exceptions.SSLError)
    assert isinstance(caught.value.reason.args[0], ssl.SSLCertVerificationError)
