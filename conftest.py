"""Every test in the workspace gets the real-server fixtures of ``opencouch.testing``, and the
in-process gateway of ``opencouch.voice_gateway.testing``."""

pytest_plugins = ["opencouch.testing.fixtures", "opencouch.voice_gateway.testing"]
