"""Test suite of oscar-deploy; a package so that `python -m tests.harness.<piece>` works."""
