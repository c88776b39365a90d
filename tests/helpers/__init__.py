"""Helpers for the tests: import them from here. Fixtures live in the ``conftest.py`` files."""
