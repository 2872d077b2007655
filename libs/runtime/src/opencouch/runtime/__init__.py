"""What every OpenCouch Voice service runs on: lifecycle, settings, logging, NATS, JetStream,
health checks and Postgres migrations. Services share this and ``opencouch.contracts`` only.
"""
