"""A service that is its own process freezes the heap its start built, once it serves; one run
inside another program (a test) leaves that program's heap alone."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap

from opencouch.runtime.lifecycle import mark_serving

_PROCESS = textwrap.dedent(
    """
    import asyncio, gc
    from opencouch.runtime.lifecycle import mark_serving, run_until_stopped

    async def main(stop: asyncio.Event) -> None:
        built = [{"kept": n} for n in range(10_000)]  # what a start keeps for good
        before = gc.get_freeze_count()
        mark_serving(stop)
        after = gc.get_freeze_count()
        mark_serving(stop)  # marked again: nothing more is done
        print(before, after, gc.get_freeze_count(), len(built))

    run_until_stopped(main)
    """
)


def test_a_service_that_is_its_process_freezes_its_start_once_it_serves() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _PROCESS], capture_output=True, text=True, timeout=60, check=True
    )
    before, after, again, _ = (int(n) for n in run.stdout.split())
    assert before == 0
    assert after > 10_000  # the start's heap, what main built included
    assert again == after


def test_a_service_run_inside_another_program_leaves_its_heap_alone() -> None:
    before = gc.get_freeze_count()
    mark_serving(asyncio.Event())
    assert gc.get_freeze_count() == before
