"""Fixtures for tests/hub; they live in support.py with the helpers they use."""

from .support import hub, module_hub, server_factory, template  # noqa: F401
