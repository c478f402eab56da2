"""Run these tests with one intra-op thread (see tests/conftest.py:single_thread)."""
import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_thread(single_thread):
    yield
