"""Offline, wire-compatible stand-in for the OpenAI Realtime API (GA)."""
