"""The conversation of one call: its items, in order, and the client events that edit them."""

from __future__ import annotations

import copy
from typing import Any

from .errors import RealtimeError
from .ids import new_id
from .transports import Emit


class Conversation:
    """Items as OpenAI keeps them; every change is announced with its server event."""

    def __init__(self, emit: Emit) -> None:
        self.id = new_id("conv_")
        self.items: list[dict[str, Any]] = []
        self._emit = emit
        # Items whose audio was cut (id to content index): their transcript stays deleted, even
        # when the response that is still writing them finishes after the cut.
        self._truncated: dict[str, int] = {}

    # -- changes the server makes -------------------------------------------------------------

    def add(self, item: dict[str, Any], *, after: str | None = None) -> None:
        """Insert an item (after ``after``, ``"root"`` or the end): ``conversation.item.added``."""
        if after == "root":
            self.items.insert(0, item)
        elif after is not None:
            self.items.insert(self.index(after) + 1, item)
        else:
            self.items.append(item)
        self._emit(
            {
                "type": "conversation.item.added",
                "previous_item_id": self.previous_id(item["id"]),
                "item": copy.deepcopy(item),
            }
        )

    def finish(self, item: dict[str, Any]) -> None:
        """Store an item's final form: ``conversation.item.done``."""
        item = copy.deepcopy(item)
        if item["id"] in self._truncated:
            _delete_transcript(item, self._truncated[item["id"]])
        for index, existing in enumerate(self.items):
            if existing["id"] == item["id"]:
                self.items[index] = item
                break
        self._emit(
            {
                "type": "conversation.item.done",
                "previous_item_id": self.previous_id(item["id"]),
                "item": copy.deepcopy(item),
            }
        )

    def set_transcript(self, item_id: str, transcript: str) -> None:
        """The transcription of a user audio item."""
        self.find(item_id)["content"][0]["transcript"] = transcript

    # -- client events ------------------------------------------------------------------------

    def create(self, item: dict[str, Any], previous_item_id: str | None) -> dict[str, Any]:
        """``conversation.item.create``: the item as stored."""
        item = copy.deepcopy(item)
        item_id = item.get("id") or new_id("item_")
        if self.has(item_id):
            raise RealtimeError(
                message=f"Item with id '{item_id}' already exists.",
                code="item_id_already_exists",
                param="item.id",
            )
        item["id"] = item_id
        item["object"] = "realtime.item"
        item.setdefault("status", "completed")
        if previous_item_id not in (None, "root") and not self.has(str(previous_item_id)):
            raise RealtimeError(
                message=f"Previous item with id '{previous_item_id}' does not exist.",
                code="item_not_found",
                param="previous_item_id",
            )
        self.add(item, after=previous_item_id)
        self.finish(item)
        return item

    def retrieve(self, item_id: str) -> dict[str, Any]:
        """``conversation.item.retrieve``: a copy of the item."""
        return copy.deepcopy(self.find(item_id))

    def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """``conversation.item.truncate``: only assistant messages can be cut."""
        item = self.find(item_id)
        if item.get("role") != "assistant":
            raise RealtimeError(
                message="Only assistant messages can be truncated.",
                code="invalid_value",
                param="item_id",
            )
        self.truncated(item["id"], content_index, audio_end_ms)

    def truncated(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """An assistant item was heard only up to ``audio_end_ms``: as OpenAI does, its text
        transcript is deleted, so the context holds no text the user did not hear."""
        # Audio of an out-of-band response can be cut too; its item is not in the conversation.
        if self.has(item_id):
            self._truncated[item_id] = content_index
            _delete_transcript(self.find(item_id), content_index)
        self._emit(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": content_index,
                "audio_end_ms": audio_end_ms,
            }
        )

    def delete(self, item_id: str) -> None:
        """``conversation.item.delete``."""
        self.items.remove(self.find(item_id))
        self._truncated.pop(item_id, None)
        self._emit({"type": "conversation.item.deleted", "item_id": item_id})

    # -- reading ------------------------------------------------------------------------------

    def has(self, item_id: str) -> bool:
        """Whether an item with this id exists."""
        return any(item["id"] == item_id for item in self.items)

    def find(self, item_id: str) -> dict[str, Any]:
        """The stored item; OpenAI's ``item_not_found`` otherwise."""
        for item in self.items:
            if item["id"] == item_id:
                return item
        raise RealtimeError(
            message=f"Item with item_id '{item_id}' not found.",
            code="item_not_found",
            param="item_id",
        )

    def index(self, item_id: str) -> int:
        """Where the item is; the end when it is not there."""
        for index, item in enumerate(self.items):
            if item["id"] == item_id:
                return index
        return len(self.items)

    def previous_id(self, item_id: str) -> str | None:
        """The id of the item just before ``item_id`` (the last one, for a new item)."""
        ids = [item["id"] for item in self.items]
        if item_id not in ids:
            return ids[-1] if ids else None
        index = ids.index(item_id)
        return ids[index - 1] if index > 0 else None

    def last_id(self) -> str | None:
        """The id of the newest item."""
        return self.items[-1]["id"] if self.items else None

    def has_user_items(self, after: str | None = None) -> bool:
        """Whether the user said anything (after item ``after``, when given)."""
        start = self.index(after) + 1 if after is not None else 0
        return any(item.get("role") == "user" for item in self.items[start:])


def _delete_transcript(item: dict[str, Any], content_index: int) -> None:
    """Empty the transcript of an item's audio part (one not written yet has none)."""
    content = item.get("content") or []
    if 0 <= content_index < len(content) and "transcript" in content[content_index]:
        content[content_index]["transcript"] = ""


def user_text(item: dict[str, Any]) -> str | None:
    """What a user message item says (its text or transcripts); None for other items."""
    if item.get("type") != "message" or item.get("role") != "user":
        return None
    return " ".join(
        str(part.get("text") or part.get("transcript") or "")
        for part in item.get("content", [])
        if isinstance(part, dict)
    ).strip()
