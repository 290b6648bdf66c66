"""Stand-ins for the clouds and machines the product talks to.

Each piece runs on 127.0.0.1 only, keeps real state, and is usable on its own: as a pytest fixture
(see `tests/conftest.py`) and by hand with `python -m tests.harness.<piece> --port N`.
"""
