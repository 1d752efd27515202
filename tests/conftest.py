"""Shared fixtures."""

import gc
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable


@pytest.fixture
def unelaborated_ok():
    """Silence Amaranth's warning about a component that a rejected call never elaborated."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        yield
        gc.collect()
