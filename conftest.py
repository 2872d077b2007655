"""Every test in the workspace gets the real-server fixtures of ``opencouch.testing``."""

pytest_plugins = ["opencouch.testing.fixtures"]
