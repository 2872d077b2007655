"""Every message that crosses an OpenCouch Voice service boundary, as pydantic models.

Modules split by boundary: ``voice_api`` (the public HTTP API), ``tools`` (the tool catalog and
tool calls over NATS), ``memory`` and ``finalizer`` (their NATS services), ``events`` (JetStream),
``realtime`` (the Realtime session config we send to OpenAI), ``subjects`` (every NATS name).
"""
