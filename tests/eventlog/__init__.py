"""Tests of the event log: the contract suite, the SQLite backend and the envelope."""

import pytest

# contract.py holds the shared suite; rewrite its asserts so failures show their values.
pytest.register_assert_rewrite("tests.eventlog.contract")
