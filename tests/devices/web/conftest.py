"""The web tests' fixtures: a real demo hub (whose cart is the simulated firmware) and real Chromium."""

from tests.web.conftest import browser, hub, new_page, shots  # noqa: F401
