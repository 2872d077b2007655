"""Audio helpers and the VAD, on synthetic audio (no espeak needed)."""

from __future__ import annotations

import numpy as np

from opencouch.realtime_emulator import audio
from opencouch.realtime_emulator.speech import tone_speech
from opencouch.realtime_emulator.vad import EnergyVad, SpeechStarted, SpeechStopped

SERVER_VAD = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}


def test_vad_finds_one_utterance_with_padding_and_trailing_silence() -> None:
    speech = tone_speech("one short sentence for the detector", 175)
    samples = np.concatenate([audio.silence(48_000, 1.0), speech, audio.silence(48_000, 1.0)])
    vad = EnergyVad(SERVER_VAD)
    events = []
    for start in range(0, samples.size, 960):
        events += vad.feed(samples[start : start + 960], 48_000)
    assert [type(event) for event in events] == [SpeechStarted, SpeechStopped]
    started, stopped = events
    assert isinstance(started, SpeechStarted)
    assert isinstance(stopped, SpeechStopped)
    # Onset at 1000 ms, minus 300 ms of prefix padding.
    assert 650 <= started.audio_start_ms <= 760
    speech_ms = speech.size * 1000 / 48_000
    assert 1000 + speech_ms <= stopped.audio_end_ms <= 1000 + speech_ms + 600


def test_vad_ignores_silence_and_quiet_noise() -> None:
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(48_000 * 2) * 30).astype(np.int16)
    vad = EnergyVad(SERVER_VAD)
    assert vad.feed(noise, 48_000) == []
    assert vad.feed(audio.silence(24_000, 1), 24_000) == []


def test_higher_threshold_needs_louder_speech() -> None:
    quiet = (tone_speech("quiet words here", 175) // 4).astype(np.int16)
    assert any(isinstance(e, SpeechStarted) for e in EnergyVad(SERVER_VAD).feed(quiet, 48_000))
    strict = EnergyVad({**SERVER_VAD, "threshold": 0.95})
    assert strict.feed(quiet, 48_000) == []


def test_tone_speech_lasts_as_long_as_the_words() -> None:
    words = "this reply has exactly eight words in it"
    seconds = tone_speech(words, 175).size / 48_000
    assert 8 * 60 / 175 * 0.8 < seconds < 8 * 60 / 175 * 1.8


def test_g711_round_trips_closely() -> None:
    samples = (np.sin(np.linspace(0, 200, 8000)) * 12_000).astype(np.int16)
    for kind in ("audio/pcmu", "audio/pcma"):
        decoded = audio.decode(audio.encode(samples, {"type": kind}), {"type": kind})
        error = np.abs(decoded.astype(np.int32) - samples.astype(np.int32))
        assert float(error.max()) < 600


def test_wav_reader_tolerates_a_streamed_header() -> None:
    samples = np.arange(-100, 100, dtype=np.int16)
    header = (
        b"RIFF\xff\xff\xff\x7fWAVEfmt "
        + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + (22050).to_bytes(4, "little")
        + (44100).to_bytes(4, "little")
        + (2).to_bytes(2, "little")
        + (16).to_bytes(2, "little")
        + b"data\x00\xf0\xff\x7f"
    )
    decoded, rate = audio.wav_pcm(header + samples.tobytes())
    assert rate == 22050
    assert np.array_equal(decoded, samples)
