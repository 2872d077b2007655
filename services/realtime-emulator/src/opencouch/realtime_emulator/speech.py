"""Speech for the assistant's replies: espeak-ng when installed, else a speech-like tone.

Either way the audio lasts about as long as the transcript takes to say, so clients that
time captions or barge-in against audio see realistic lengths.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import shutil
from collections import OrderedDict
from typing import Literal

import numpy as np

from .audio import WEBRTC_RATE, Samples, resample, wav_pcm

log = logging.getLogger(__name__)

# OpenAI voice names to espeak-ng voice variants, so different voices sound different.
_ESPEAK_VOICES = {
    "alloy": "en-us+f2",
    "ash": "en-us+m3",
    "ballad": "en-gb+m2",
    "coral": "en-us+f4",
    "echo": "en-us+m1",
    "sage": "en-us+f3",
    "shimmer": "en-us+f5",
    "verse": "en-us+m4",
    "marin": "en-us+f1",
    "cedar": "en-us+m7",
}
_CACHE_SIZE = 64
_AMPLITUDE = 0.35 * 32767


class SpeechSynthesizer:
    """Turns reply text into 48 kHz mono samples."""

    def __init__(self, mode: Literal["auto", "espeak", "tone"], words_per_minute: int) -> None:
        self._espeak = shutil.which("espeak-ng") if mode != "tone" else None
        if mode == "espeak" and self._espeak is None:
            raise RuntimeError("speech=espeak but espeak-ng is not installed")
        self._wpm = words_per_minute
        self._cache: OrderedDict[tuple[str, str, float], Samples] = OrderedDict()

    @property
    def engine(self) -> str:
        """``espeak-ng`` or ``tone``."""
        return "espeak-ng" if self._espeak else "tone"

    async def synthesize(self, text: str, voice: str, speed: float = 1.0) -> Samples:
        """Speech for ``text`` at 48 kHz; empty text gives no samples."""
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        key = (text, voice, speed)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        samples: Samples | None = None
        if self._espeak:
            samples = await self._run_espeak(text, voice, speed)
        if samples is None:
            samples = tone_speech(text, round(self._wpm * speed))
        self._cache[key] = samples
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return samples

    async def _run_espeak(self, text: str, voice: str, speed: float) -> Samples | None:
        assert self._espeak is not None
        # Text goes in on stdin so it never shows up in a process list.
        process = await asyncio.create_subprocess_exec(
            self._espeak,
            "--stdout",
            "-v",
            _ESPEAK_VOICES.get(voice, "en-us"),
            "-s",
            str(max(80, min(450, round(self._wpm * speed)))),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        wav, _ = await process.communicate(text.encode("utf-8"))
        if process.returncode != 0 or not wav:
            log.warning("espeak-ng failed (status %s); speaking a tone", process.returncode)
            return None
        try:
            samples, rate = wav_pcm(wav)
        except ValueError:
            log.warning("espeak-ng wrote no usable WAV; speaking a tone")
            return None
        return resample(samples, rate, WEBRTC_RATE)


def tone_speech(text: str, words_per_minute: int) -> Samples:
    """A voiced buzz per word with pauses at punctuation, as long as the words take to say."""
    rate = WEBRTC_RATE
    word_seconds = 60.0 / max(words_per_minute, 1)
    pieces: list[Samples] = []
    for index, token in enumerate(re.findall(r"[\w'\u2019-]+[.,;:!?]*", text)):
        syllables = max(1, len(re.findall(r"[aeiouy]+", token.lower())))
        voiced = word_seconds * (0.55 + 0.15 * min(syllables, 3))
        t = np.arange(round(rate * voiced)) / rate
        pitch = 170.0 + 40.0 * math.sin(index * 1.7)
        wave = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in (1, 2, 3))
        envelope = np.sin(np.pi * t / voiced) ** 0.5
        pieces.append((wave * envelope * _AMPLITUDE / 1.8).astype(np.int16))
        pause = word_seconds * 0.25
        if token[-1] in ".!?":
            pause += 0.35
        elif token[-1] in ",;:":
            pause += 0.15
        pieces.append(np.zeros(round(rate * pause), dtype=np.int16))
    if not pieces:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(pieces).astype(np.int16)
