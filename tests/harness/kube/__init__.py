"""The Kubernetes API test server, split by concern (entry point: ``tests/harness/kube_api.py``)."""
