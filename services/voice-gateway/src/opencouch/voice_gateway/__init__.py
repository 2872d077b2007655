"""The voice gateway: the public ``/api/voice/realtime/*`` API in front of the NATS services."""
