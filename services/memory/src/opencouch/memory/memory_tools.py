"""The nine memory tools of the catalog: see, search, change and delete saved memory by voice.

Every change checks the mode again (incognito changes nothing), needs an owner, and, for the
tools that take a ``user_quote``, passes the intent gate. Deleting is two steps: a prepare tool
stages one item (held in Redis for a few minutes), and only ``confirm_memory_deletion`` deletes.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from opencouch.contracts.common import Contract, ErrorCode, MemoryMode
from opencouch.contracts.memory import (
    DeletionOutput,
    MemoryChangeOutput,
    MemoryItem,
    MemoryKind,
    MemorySource,
    MemoryStatusOutput,
    RecallOutput,
    SavedMemoryOutput,
)
from opencouch.contracts.tools import (
    NoArguments,
    PrepareMemoryDeletionByIndexArgs,
    PrepareMemoryDeletionByQueryArgs,
    RecallSavedMemoryArgs,
    SaveResponsePreferenceArgs,
    SetProactiveMemoryRecallArgs,
    ToolCallContext,
    ToolErrorOutput,
)
from opencouch.memory.candidates import CandidateStore, HeldFact
from opencouch.memory.deletions import StagedDeletion, StagedDeletions
from opencouch.memory.intent import normalise, require_user_intent
from opencouch.memory.memory_store import FoundItem, MemoryStore
from opencouch.memory.policy import mutation_owner, owner_key, require_persistent
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.tools import ToolHandler, tool_error

SHOWN_PER_KIND: Final = 20
CANDIDATES_SHOWN: Final = 5

_GUIDANCE: Final[dict[ErrorCode, str]] = {
    ErrorCode.USER_INTENT_NOT_VERIFIED: (
        "Change memory only when the user asks in their own words. Ask them what they want, "
        "then call again with user_quote set to their exact words."
    ),
    ErrorCode.MEMORY_OFF: (
        "Tell the user memory is off in this conversation, so nothing is saved or changed."
    ),
    ErrorCode.RECALL_OFF: (
        "Proactive recall is off. Offer to show saved memory (show_saved_memory), or ask "
        "whether the user wants recall turned on."
    ),
    ErrorCode.OWNER_OR_SESSION_MISSING: "Tell the user memory cannot be changed right now.",
}

ArgsT = TypeVar("ArgsT")
OutputT = TypeVar("OutputT", bound=Contract)


def _refusing_with_guidance(
    handler: Callable[[ArgsT, ToolCallContext], Awaitable[OutputT]],
) -> Callable[[ArgsT, ToolCallContext], Awaitable[OutputT | ToolErrorOutput]]:
    """A refusal comes back as a tool output that also says what the model should do next."""

    @functools.wraps(handler)
    async def run(arguments: ArgsT, context: ToolCallContext) -> OutputT | ToolErrorOutput:
        try:
            return await handler(arguments, context)
        except ServiceError as error:
            if error.code not in _GUIDANCE:
                raise
            return tool_error(error.code, error.message, _GUIDANCE[error.code])

    return run


def _pending_item(fact: HeldFact, session_id: str) -> MemoryItem:
    return MemoryItem(
        kind="fact",
        index=None,
        text=fact.text,
        source=MemorySource(session_id=session_id, recorded_at=fact.stated_at),
    )


NOTHING_KEPT: Final = (
    "Nothing is kept about you yet. Facts you share are saved when a conversation ends, if you "
    "choose to keep it."
)


def _kept_summary(
    facts: list[MemoryItem], rules: list[MemoryItem], pending: list[MemoryItem], sessions: int
) -> str:
    """What is kept, in plain sentences: each kind's items in their own words, newest first."""
    parts = [
        f"{heading}: {' '.join(_as_sentence(item.text) for item in items)}"
        for heading, items in (
            ("Saved about you", facts),
            ("Your preferences", rules),
            ("From this conversation, saved when it ends", pending),
        )
        if items
    ]
    if sessions:
        parts.append(
            "A summary of 1 earlier conversation is kept too."
            if sessions == 1
            else f"Summaries of {sessions} earlier conversations are kept too."
        )
    return " ".join(parts) if parts else NOTHING_KEPT


def _as_sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


class MemoryTools:
    """The memory tools over the durable store, the session's candidates and staged deletions."""

    def __init__(
        self, store: MemoryStore, candidates: CandidateStore, deletions: StagedDeletions
    ) -> None:
        self._store = store
        self._candidates = candidates
        self._deletions = deletions

    def handlers(self) -> dict[str, ToolHandler]:
        """Every memory tool of the catalog, by name."""
        return {
            "show_memory_status": self.show_memory_status,
            "show_saved_memory": _refusing_with_guidance(self.show_saved_memory),
            "recall_saved_memory": _refusing_with_guidance(self.recall_saved_memory),
            "save_response_preference": _refusing_with_guidance(self.save_response_preference),
            "set_proactive_memory_recall": _refusing_with_guidance(
                self.set_proactive_memory_recall
            ),
            "prepare_memory_deletion_by_index": _refusing_with_guidance(
                self.prepare_memory_deletion_by_index
            ),
            "prepare_memory_deletion_by_query": _refusing_with_guidance(
                self.prepare_memory_deletion_by_query
            ),
            "confirm_memory_deletion": _refusing_with_guidance(self.confirm_memory_deletion),
            "cancel_memory_deletion": _refusing_with_guidance(self.cancel_memory_deletion),
        }

    # -- seeing ---------------------------------------------------------------------------------

    async def show_memory_status(
        self, _: NoArguments, context: ToolCallContext
    ) -> MemoryStatusOutput:
        """Is memory on here, what does it keep, and how much is saved."""
        if context.memory_mode is MemoryMode.INCOGNITO:
            return MemoryStatusOutput(
                memory_mode=MemoryMode.INCOGNITO,
                memory_enabled=False,
                proactive_recall_enabled=False,
                kept=[],
                summary=(
                    "Memory is off: this is an incognito conversation. Nothing said here is "
                    "saved, and saved memory is not used."
                ),
            )
        owner = owner_key(context.thread_id, context.user_id)
        counts = await self._store.counts(owner)
        return MemoryStatusOutput(
            memory_mode=MemoryMode.PERSISTENT,
            memory_enabled=True,
            proactive_recall_enabled=await self._store.proactive_recall_enabled(owner),
            kept=[
                "the transcript of this conversation",
                "a short summary when the session ends",
                "facts the user states about themselves, saved when the session ends",
                "preferences the user explicitly asks to save",
            ],
            saved_facts=counts["fact"],
            saved_sessions=counts["session"],
            saved_rules=counts["rule"],
            summary=(
                "Memory is on. This conversation is saved. Saved memory can be shown, and "
                "any item deleted, on request."
            ),
        )

    async def show_saved_memory(
        self, _: NoArguments, context: ToolCallContext
    ) -> SavedMemoryOutput:
        """Everything saved, numbered per kind, newest first, and this session's held facts."""
        require_persistent(context.memory_mode)
        owner = owner_key(context.thread_id, context.user_id)
        counts = await self._store.counts(owner)
        held = await self._candidates.held(context.session_id)
        facts = await self._store.newest(owner, "fact", SHOWN_PER_KIND)
        rules = await self._store.newest(owner, "rule", SHOWN_PER_KIND)
        pending = [_pending_item(fact, context.session_id) for fact in held]
        return SavedMemoryOutput(
            facts=facts,
            sessions=await self._store.newest(owner, "session", SHOWN_PER_KIND),
            rules=rules,
            pending_facts=pending,
            total_facts=counts["fact"],
            total_sessions=counts["session"],
            total_rules=counts["rule"],
            proactive_recall_enabled=await self._store.proactive_recall_enabled(owner),
            summary=_kept_summary(facts, rules, pending, counts["session"]),
            guidance=(
                "Read items back only as the user asks. To delete one, use its kind and number "
                "with prepare_memory_deletion_by_index. Pending facts are from this "
                "conversation and are saved when it ends."
            ),
        )

    async def recall_saved_memory(
        self, arguments: RecallSavedMemoryArgs, context: ToolCallContext
    ) -> RecallOutput:
        """Saved facts and session summaries that match the query, best first."""
        require_persistent(context.memory_mode)
        owner = owner_key(context.thread_id, context.user_id)
        if not await self._store.proactive_recall_enabled(owner):
            raise ServiceError(ErrorCode.RECALL_OFF, "Proactive memory recall is off.")
        found = await self._store.search(
            owner, arguments.query, ("fact", "session"), arguments.limit
        )
        if not found:
            return RecallOutput(
                status="nothing_found",
                items=[],
                guidance="Nothing saved matches. Do not guess; ask the user if it matters.",
            )
        return RecallOutput(
            status="found",
            items=[hit.item for hit in found],
            guidance="Use what fits, briefly and naturally; do not recite saved memory.",
        )

    # -- changing -------------------------------------------------------------------------------

    async def save_response_preference(
        self, arguments: SaveResponsePreferenceArgs, context: ToolCallContext
    ) -> MemoryChangeOutput | ToolErrorOutput:
        """Keep how the user wants to be answered, as they asked for it.

        A preference is kept once per owner, by its words (``normalise``): one without a
        letter or digit has none to be told apart by, so it is refused, not saved.
        """
        owner = mutation_owner(context)
        if not normalise(arguments.preference_text):
            return tool_error(
                ErrorCode.INVALID_ARGUMENTS,
                "preference_text: needs at least one letter or digit",
                "Say the preference in words, as the user put it, and call the tool again.",
            )
        require_user_intent(arguments.user_quote, context)
        saved = await self._store.save_rule(
            owner,
            arguments.preference_text,
            session_id=context.session_id,
            thread_id=context.thread_id,
        )
        return MemoryChangeOutput(
            status="saved" if saved else "unchanged",
            detail=(
                "Saved; it applies from the next conversation on, and from now in this one."
                if saved
                else "This preference was already saved."
            ),
        )

    async def set_proactive_memory_recall(
        self, arguments: SetProactiveMemoryRecallArgs, context: ToolCallContext
    ) -> MemoryChangeOutput:
        """Turn bringing up saved memory unprompted on or off."""
        owner = mutation_owner(context)
        require_user_intent(arguments.user_quote, context)
        changed = await self._store.set_proactive_recall(
            owner, arguments.enabled, session_id=context.session_id, thread_id=context.thread_id
        )
        state = "on" if arguments.enabled else "off"
        return MemoryChangeOutput(
            status="updated" if changed else "unchanged",
            detail=f"Proactive recall is {state}" + ("." if changed else ", as it was."),
            proactive_recall_enabled=arguments.enabled,
        )

    # -- deleting -------------------------------------------------------------------------------

    async def prepare_memory_deletion_by_index(
        self, arguments: PrepareMemoryDeletionByIndexArgs, context: ToolCallContext
    ) -> DeletionOutput:
        """Stage the item ``show_saved_memory`` numbered ``target_index`` in its list."""
        owner = mutation_owner(context)
        require_user_intent(arguments.user_quote, context)
        found = await self._store.item_at(owner, arguments.target_kind, arguments.target_index)
        if found is None:
            return DeletionOutput(
                status="not_found",
                guidance="There is no such item. Show saved memory again to get its number.",
            )
        return await self._stage(context, owner, found)

    async def prepare_memory_deletion_by_query(
        self, arguments: PrepareMemoryDeletionByQueryArgs, context: ToolCallContext
    ) -> DeletionOutput:
        """Stage the one item the query describes, or list the candidates when it is unclear.

        An item matching every word of the query wins when it is the only one; else an item
        matching any word, when it is the only one. This session's held facts count too.
        """
        owner = mutation_owner(context)
        require_user_intent(arguments.user_quote, context)
        kinds: tuple[MemoryKind, ...] = ("fact", "session", "rule")
        found = await self._store.search(owner, arguments.query, kinds, CANDIDATES_SHOWN)
        pending = await self._candidates.held(context.session_id)
        matched = await self._store.matches(arguments.query, [fact.text for fact in pending])
        held = [fact for fact, (some, _) in zip(pending, matched, strict=True) if some]
        held_complete = [fact for fact, (_, every) in zip(pending, matched, strict=True) if every]
        complete = [hit for hit in found if hit.complete]
        if len(complete) + len(held_complete) == 1:
            return await self._stage_one(context, owner, complete, held_complete)
        if len(found) + len(held) == 1:
            return await self._stage_one(context, owner, found, held)
        loose = found
        if not loose and not held:
            return DeletionOutput(
                status="not_found",
                guidance="Nothing saved matches. Offer to show saved memory.",
            )
        return DeletionOutput(
            status="ambiguous",
            candidates=[
                *[_pending_item(fact, context.session_id) for fact in held],
                *[hit.item for hit in loose],
            ][:CANDIDATES_SHOWN],
            guidance=(
                "Several items match. Read them briefly, ask which one, then stage it by kind "
                "and number with prepare_memory_deletion_by_index."
            ),
        )

    async def confirm_memory_deletion(
        self, _: NoArguments, context: ToolCallContext
    ) -> DeletionOutput:
        """Delete what was staged, once; a second confirm finds nothing staged."""
        owner = mutation_owner(context)
        staged = await self._deletions.take(context.session_id)
        if staged is None or staged.owner != owner:
            return DeletionOutput(
                status="nothing_staged",
                guidance="Nothing is waiting to be deleted. Stage a deletion first.",
            )
        try:
            deleted = await self._delete(context, staged)
        except Exception:
            await self._deletions.stage(context.session_id, staged)  # still confirmable
            raise
        if not deleted:
            return DeletionOutput(status="not_found", guidance="It was already gone.")
        return DeletionOutput(
            status="deleted",
            deleted=1,
            guidance="Tell the user it is deleted and will not be used again.",
        )

    async def cancel_memory_deletion(
        self, _: NoArguments, context: ToolCallContext
    ) -> DeletionOutput:
        """Drop the staged deletion, if any."""
        mutation_owner(context)
        if await self._deletions.cancel(context.session_id):
            return DeletionOutput(status="cancelled", guidance="Nothing was deleted.")
        return DeletionOutput(status="nothing_staged", guidance="Nothing was waiting.")

    # -- helpers ------------------------------------------------------------------------------

    async def _stage_one(
        self,
        context: ToolCallContext,
        owner: str,
        found: list[FoundItem],
        held: list[HeldFact],
    ) -> DeletionOutput:
        if found:
            return await self._stage(context, owner, found[0])
        fact = held[0]
        await self._deletions.stage(
            context.session_id, StagedDeletion(kind="fact", owner=owner, held_key=fact.key)
        )
        return self._staged_output(_pending_item(fact, context.session_id))

    async def _stage(
        self, context: ToolCallContext, owner: str, found: FoundItem
    ) -> DeletionOutput:
        await self._deletions.stage(
            context.session_id,
            StagedDeletion(kind=found.item.kind, owner=owner, row_id=found.row_id),
        )
        return self._staged_output(found.item)

    @staticmethod
    def _staged_output(item: MemoryItem) -> DeletionOutput:
        return DeletionOutput(
            status="staged",
            staged=item,
            guidance=(
                "Read the item back and ask the user to confirm. Delete it with "
                "confirm_memory_deletion only after they say yes; otherwise cancel."
            ),
        )

    async def _delete(self, context: ToolCallContext, staged: StagedDeletion) -> bool:
        if staged.held_key is not None:
            return await self._candidates.forget(context.session_id, staged.held_key)
        assert staged.row_id is not None  # a staged saved item always names its row
        deleted = await self._store.delete(staged.owner, staged.kind, staged.row_id)
        if deleted is not None and staged.kind == "fact":
            # This session, or another of the owner's not committed yet, may hold the same fact
            # again; it must not be saved back at their end.
            await self._candidates.forget_everywhere(
                staged.owner, normalise(deleted), context.session_id
            )
        return deleted is not None
