"""The conversation's own bookkeeping: what an edit leaves stored, whatever order it comes in."""

from __future__ import annotations

from typing import Any

from opencouch.realtime_emulator.conversation import Conversation


def reply(transcript: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": "item_reply",
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_audio", "transcript": transcript}],
    }


def test_truncating_a_finished_reply_deletes_its_transcript() -> None:
    events: list[dict[str, Any]] = []
    conversation = Conversation(events.append)
    conversation.add(reply("", status="in_progress"))
    conversation.finish(reply("Okay. What would you like to do next?"))

    conversation.truncate("item_reply", 0, 10)

    assert events[-1] == {
        "type": "conversation.item.truncated",
        "item_id": "item_reply",
        "content_index": 0,
        "audio_end_ms": 10,
    }
    assert conversation.retrieve("item_reply")["content"] == [
        {"type": "output_audio", "transcript": ""}
    ]


def test_a_reply_cut_while_still_written_keeps_its_transcript_deleted() -> None:
    """Barge-in cuts the playing reply before its response closes the item."""
    events: list[dict[str, Any]] = []
    conversation = Conversation(events.append)
    conversation.add(reply("", status="in_progress") | {"content": []})

    conversation.truncated("item_reply", 0, 1200)
    conversation.finish(reply("Hello, and welcome. I am really glad", status="incomplete"))

    stored = conversation.retrieve("item_reply")
    assert stored["status"] == "incomplete"
    assert stored["content"] == [{"type": "output_audio", "transcript": ""}]
    done = events[-1]
    assert done["type"] == "conversation.item.done"
    assert done["item"] == stored
