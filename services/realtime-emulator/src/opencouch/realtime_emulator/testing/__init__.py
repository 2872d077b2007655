"""Test support shipped with the emulator: run it in-process, and talk to it like a browser.

``running_emulator`` serves the real app on a free loopback port in its own thread (the
pytest plugin's ``realtime_emulator`` fixture uses it); ``TestPeer`` is an aiortc caller with
a microphone that plays WAV files, the ``oai-events`` channel and a speaker that measures
what it hears; ``EventStream`` collects raw events from an openai SDK connection.
"""

from .peer import Microphone, Speaker, TestPeer
from .server import (
    API_KEY,
    Event,
    RunningEmulator,
    accepted_client_events,
    fetch_log,
    free_port,
    running_emulator,
    sent_server_events,
    spec_checkable,
)
from .stream import EventStream
from .utterances import make_speech_wav, speech_tools_missing

__all__ = [
    "API_KEY",
    "Event",
    "EventStream",
    "Microphone",
    "RunningEmulator",
    "Speaker",
    "TestPeer",
    "accepted_client_events",
    "fetch_log",
    "free_port",
    "make_speech_wav",
    "running_emulator",
    "sent_server_events",
    "spec_checkable",
    "speech_tools_missing",
]
