// Shapes shared by the browser client's modules, for `tsc --checkJs` only (never served).

/** A Realtime server or client event, as JSON from the data channel. */
type RealtimeEvent = { type: string; [field: string]: any };

type MemoryMode = 'incognito' | 'persistent';

/** The /session form: what a person chose. */
interface SessionSetup {
  thread_id: string;
  user_id?: string;
  memory_mode: MemoryMode;
  assistant_voice: string;
}

/** One assistant message of a turn; `heardMs` is set when a barge-in cut its audio. */
interface AssistantLine {
  itemId: string;
  text: string;
  done: boolean;
  heardMs: number | null;
}

/** One tool call, from the model's request to the output sent back. */
interface ToolCall {
  callId: string;
  name: string;
  responseId: string;
  argumentsText: string;
  arguments: Record<string, unknown> | null;
  /** `skipped`: its response was cut off (a barge-in), so it never ran. */
  status: 'running' | 'done' | 'failed' | 'skipped';
  startedAt: number;
  ms: number | null;
  output: Record<string, any> | null;
  sent: boolean;
}

interface ToolResult {
  ok: boolean;
  output: Record<string, any>;
}

/** One user utterance (spoken or typed) and everything the assistant did in reply. */
interface Turn {
  id: string;
  startedAt: number;
  userText: string;
  userDone: boolean;
  userFailed: boolean;
  lines: AssistantLine[];
  tools: ToolCall[];
  open: Set<string>;
  responded: boolean;
  followUp: boolean;
  playing: boolean;
  /** Its audio was cleared by a barge-in: the truncation saying what was heard is on its way. */
  awaitingCut: boolean;
  superseded: boolean;
  closed: boolean;
  discarded: boolean;
  outcome: 'completed' | 'connection_interrupted' | 'safety_interrupted';
  speechStoppedAt: number | null;
  firstAudioMs: number | null;
}

/** The browser's latency marks, as sent with each turn (TurnLatency). */
interface LatencyMarks {
  session_minted_ms?: number;
  connected_ms?: number;
  first_audio_ms?: number;
  tool_round_trips_ms?: number[];
}

/** A /turn waiting in the outbox, with the token of the session it belongs to. */
interface OutboxEntry {
  id: string;
  sessionId: string;
  token: string;
  tokenExpiresAt: number;
  body: Record<string, any>;
  persist: boolean;
  tries: number;
  dueAt: number;
}

/** How a gateway call ended, for code that must not throw (the outbox). */
interface Attempt {
  status: number;
  code?: string;
  retryAfterMs?: number | null;
}

/** A conversation's last session, kept for a reload's end, earlier turns and erasure. */
interface SavedSession {
  session_id: string;
  token: string;
  token_expires_at: number;
  ended?: boolean;
}

/** What the page keeps of a conversation in localStorage. */
interface SavedConversation {
  thread_id: string;
  user_id: string;
  memory_mode: MemoryMode;
  assistant_voice: string;
  /** A persistent session's only: an incognito one's is kept in the tab (conversation-store.js). */
  last?: SavedSession | null;
}
