"""Spoken test input: espeak-ng speech as WAV files, when espeak-ng and sox are installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def speech_tools_missing() -> str | None:
    """Why spoken tests cannot run here (espeak-ng or sox missing), or None."""
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        return f"needs {' and '.join(missing)} (apt-get install -y espeak-ng sox)"
    return None


def make_speech_wav(text: str, directory: Path, name: str = "utterance") -> Path:
    """espeak-ng speech as 48 kHz mono 16-bit WAV with a second of silence either side."""
    path = directory / f"{name}.wav"
    espeak = subprocess.run(["espeak-ng", "--stdout", text], check=True, capture_output=True)
    subprocess.run(
        [
            "sox",
            "-t",
            "wav",
            "-",
            "-r",
            "48000",
            "-c",
            "1",
            "-b",
            "16",
            str(path),
            "pad",
            "1.0",
            "1.0",
        ],
        input=espeak.stdout,
        check=True,
        capture_output=True,
    )
    return path
