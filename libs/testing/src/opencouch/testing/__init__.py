"""Test support for OpenCouch Voice: real servers, service processes, official schemas.

Tests import from here; no product code does.
"""
