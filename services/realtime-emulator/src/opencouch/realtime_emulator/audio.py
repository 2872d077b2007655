"""PCM audio: resampling, G.711, WAV bytes and the formats the Realtime session names.

Samples are mono ``int16`` numpy arrays throughout; WebRTC runs at 48 kHz, the WebSocket
transport at the session's format (PCM 24 kHz, or G.711 at 8 kHz).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.int16]

WEBRTC_RATE = 48_000
PCM_RATE = 24_000
G711_RATE = 8_000


def silence(rate: int, seconds: float) -> Samples:
    """``seconds`` of digital silence."""
    return np.zeros(round(rate * seconds), dtype=np.int16)


def resample(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    """Linear-interpolation resampling: crude, but speech stays intelligible and VAD-able."""
    if from_rate == to_rate or samples.size == 0:
        return samples
    count = round(samples.size * to_rate / from_rate)
    positions = np.linspace(0, samples.size - 1, num=count)
    resampled = np.interp(positions, np.arange(samples.size), samples.astype(np.float32))
    return np.clip(resampled, -32768, 32767).astype(np.int16)


def rms_dbfs(samples: Samples) -> float:
    """Loudness of a frame in dB relative to full scale (silence is -100)."""
    if samples.size == 0:
        return -100.0
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))
    if rms < 1e-9:
        return -100.0
    return 20.0 * float(np.log10(rms / 32768.0))


def wav_pcm(data: bytes) -> tuple[Samples, int]:
    """Mono samples and rate from a 16-bit WAV, tolerating a streamed header's bogus sizes."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    offset = 12
    rate = 0
    channels = 1
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        body = offset + 8
        if chunk_id == b"fmt ":
            channels = int.from_bytes(data[body + 2 : body + 4], "little")
            rate = int.from_bytes(data[body + 4 : body + 8], "little")
        elif chunk_id == b"data":
            # espeak-ng --stdout writes 0x7ffff000 as the size: read to the end instead.
            raw = data[body : min(len(data), body + size)]
            raw = raw[: len(raw) - len(raw) % (2 * channels)]
            samples = np.frombuffer(raw, dtype="<i2").astype(np.int16)
            if channels > 1:
                samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
            return samples, rate
        offset = body + size + (size & 1)
    raise ValueError("WAV file has no data chunk")


def _mulaw_encode(samples: Samples) -> bytes:
    # Shift before taking the magnitude, as the reference G.711 code does, so negative
    # values round the same way.
    x = samples.astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(x), 8159) + 0x21
    segment = np.floor(np.log2(magnitude)).astype(np.int32) - 5
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    encoded = np.where(segment >= 8, 0x7F, (segment << 4) | mantissa) ^ mask
    return bytes(encoded.astype(np.uint8).tobytes())


def _mulaw_decode(data: bytes) -> Samples:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_encode(samples: Samples) -> bytes:
    x = samples.astype(np.int32) >> 3
    sign = np.where(x >= 0, 0x80, 0)
    magnitude = np.minimum(np.where(x < 0, -x - 1, x), 0x0FFF)
    exponent = np.where(magnitude >= 32, np.floor(np.log2(np.maximum(magnitude, 1))) - 4, 0)
    exponent = exponent.astype(np.int32)
    mantissa = np.where(exponent > 0, (magnitude >> exponent) & 0x0F, (magnitude >> 1) & 0x0F)
    encoded = (sign | (exponent << 4) | mantissa) ^ 0x55
    return bytes(encoded.astype(np.uint8).tobytes())


def _alaw_decode(data: bytes) -> Samples:
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent > 0, ((mantissa << 4) + 0x108) << (exponent - 1), (mantissa << 4) + 8
    )
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


def format_rate(audio_format: dict[str, Any] | None) -> int:
    """Sample rate of a session audio format (``audio/pcm`` 24 kHz, G.711 8 kHz)."""
    kind = (audio_format or {}).get("type", "audio/pcm")
    return PCM_RATE if kind == "audio/pcm" else G711_RATE


def decode(payload_b64: str, audio_format: dict[str, Any] | None) -> Samples:
    """Base64 audio of ``input_audio_buffer.append`` to samples at the format's rate."""
    raw = base64.b64decode(payload_b64, validate=True)
    kind = (audio_format or {}).get("type", "audio/pcm")
    if kind == "audio/pcmu":
        return _mulaw_decode(raw)
    if kind == "audio/pcma":
        return _alaw_decode(raw)
    raw = raw[: len(raw) - len(raw) % 2]
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def encode(samples: Samples, audio_format: dict[str, Any] | None) -> str:
    """Samples at the format's rate to base64 for ``response.output_audio.delta``."""
    kind = (audio_format or {}).get("type", "audio/pcm")
    if kind == "audio/pcmu":
        raw = _mulaw_encode(samples)
    elif kind == "audio/pcma":
        raw = _alaw_encode(samples)
    else:
        raw = samples.astype("<i2").tobytes()
    return base64.b64encode(raw).decode("ascii")
