"""``uv run python -m opencouch.tools.classify_crisis``: the crisis classifier for reviewers.

Reads one utterance per line on stdin and prints one JSON object per line on stdout,
``{"level": 0-3, "reason": "..."}``, in the same order. Each line is classified on its own,
without conversation context. Nothing is logged or kept.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from opencouch.tools.classifier import classify


def run(source: TextIO, sink: TextIO) -> int:
    """Classify each line of ``source`` onto ``sink``; returns how many lines were read."""
    count = 0
    for line in source:
        assessment = classify(line.rstrip("\r\n"))
        sink.write(json.dumps({"level": assessment.level, "reason": assessment.reason}) + "\n")
        sink.flush()
        count += 1
    return count


def main() -> None:
    """Run over stdin and stdout."""
    run(sys.stdin, sys.stdout)


if __name__ == "__main__":
    main()
