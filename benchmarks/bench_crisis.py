"""How long the crisis classifier and the crisis-resource lookup take per call, against a floor.

The classifier runs over every utterance of the shipped evaluation set; the lookup (location from
the user's words, then the verified rows) over place statements with a short transcript. The
floor is one compiled regular-expression search over the same texts, measured in the same run,
so the ratio shows what the rules cost on this machine. Prints one JSON line; exits 1 when either
median is 1 ms or more.

    uv run python benchmarks/bench_crisis.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from opencouch.contracts.common import TranscriptLine
from opencouch.tools.classifier import classify
from opencouch.tools.crisis import CrisisDirectory
from opencouch.tools.location import locate_user
from opencouch.tools.places import gazetteer
from opencouch.tools.testing import crisis_evaluation_set

LIMIT_MS = 1.0

LOOKUP_MESSAGES = [
    "I live in New South Wales and I can't cope",
    "I'm in Sydney, not in London anymore",
    "Birmingham, Alabama",
    "Northern Ireland",
    "I'm from the UK but I live in Dublin now",
    "my sister lives in Canada, I'm in Ohio",
    "I'd rather not say where I am",
    "I just feel so alone tonight and nothing helps",
]
TRANSCRIPT = [
    TranscriptLine(role="user", text="I've had a really rough week at work"),
    TranscriptLine(role="assistant", text="That sounds exhausting. Where are you right now?"),
]


def per_call_ms(work: Callable[[str], object], texts: Sequence[str], rounds: int) -> list[float]:
    """Milliseconds per call, one sample per text per round."""
    samples = []
    for _ in range(rounds):
        for text in texts:
            started = time.perf_counter()
            work(text)
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 4),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    utterances = [row["text"] for row in crisis_evaluation_set()]
    directory = CrisisDirectory.packaged()
    gazetteer()  # built once per process at start-up, not per call
    for text in utterances + LOOKUP_MESSAGES:  # warm caches and regex compilation
        classify(text)
        directory.lookup(locate_user(text, TRANSCRIPT))

    floor_pattern = re.compile(r"\bkill(?:ing)? myself\b")
    floor = per_call_ms(lambda text: floor_pattern.search(text.lower()), utterances, args.rounds)
    classifier = per_call_ms(classify, utterances, args.rounds)
    lookup = per_call_ms(
        lambda text: directory.lookup(locate_user(text, TRANSCRIPT)), LOOKUP_MESSAGES, args.rounds
    )
    floor_p50 = statistics.median(floor)
    result = {
        "benchmark": "crisis",
        "classifier": {**summary(classifier), "calls": len(classifier)},
        "lookup": {**summary(lookup), "calls": len(lookup)},
        "floor_regex": summary(floor),
        "classifier_over_floor": round(statistics.median(classifier) / floor_p50, 1),
        "lookup_over_floor": round(statistics.median(lookup) / floor_p50, 1),
        "limit_ms": LIMIT_MS,
    }
    print(json.dumps(result))
    slow = max(statistics.median(classifier), statistics.median(lookup)) >= LIMIT_MS
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
