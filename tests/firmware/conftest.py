"""The hub's fixtures, for the tests that run the firmware against a real hub."""

from tests.hub.support import server_factory, template  # noqa: F401
