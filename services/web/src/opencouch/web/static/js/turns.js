// Turn pairing. A turn is one user utterance (spoken or typed) and all the assistant did in reply:
// lines over one or more responses, and tool calls. It starts when speech starts, so it keeps its
// place even if the transcription comes after the reply. It closes once the user's words are
// known, no response runs, no tool output awaits a reply and playback stopped: a barge-in can
// still cut the line to what was heard. A barge-in's cut (conversation.item.truncated) follows
// the cleared buffer, so a turn whose audio was cleared waits briefly for it: its /turn body is
// built as it closes, and must carry what was heard, not the whole reply.

/** How long a turn whose audio was cleared waits for its line's truncation. */
export const CUT_WAIT_MS = 1000;

/** The words of `text` heard in its first `ms` of audio, at a typical speaking rate. */
export const heardPart = (text, ms, wordsPerMinute = 160) =>
  text.split(/\s+/).filter(Boolean).slice(0, Math.max(0, Math.round((ms / 60000) * wordsPerMinute))).join(' ');

/** @param {AssistantLine} line */
export const lineText = (line) => (line.heardMs === null ? line.text : heardPart(line.text, line.heardMs));
/** @param {Turn} turn */
export const assistantText = (turn) => turn.lines.map(lineText).filter(Boolean).join(' ');

/** @returns {ToolCall} */
export const newToolCall = (callId, name, responseId, argumentsText, now, parsed = null) => ({
  callId, name, responseId, argumentsText: argumentsText ?? '', arguments: parsed,
  status: 'running', startedAt: now, ms: null, output: null, sent: false,
});

export class TurnTracker {
  /**
   * @param {{newId: () => string, now?: () => number, onChange?: (t: Turn) => void, onClose?: (t: Turn) => void,
   *   later?: (fn: () => void, ms: number) => unknown}} hooks `later` runs `fn` after `ms` (setTimeout)
   */
  constructor({ newId, now = Date.now, onChange = () => {}, onClose = () => {}, later = (fn, ms) => setTimeout(fn, ms) }) {
    this.newId = newId;
    this.now = now;
    this.later = later;
    this.onChange = onChange;
    this.onClose = onClose;
    /** @type {Turn[]} */
    this.turns = [];
    /** @type {Map<string, Turn>} item and response ids to their turn */
    this.owner = new Map();
  }

  /** The newest turn, while open. */
  get current() {
    const last = this.turns.at(-1);
    return last?.closed ? undefined : last;
  }

  get activeResponses() {
    return this.turns.reduce((n, t) => n + t.open.size, 0);
  }

  /** A typed message: a turn of its own from the moment it is sent. */
  typed(text, itemId) {
    // Its first-audio latency counts from the moment it was sent.
    const turn = Object.assign(this.#begin(itemId, true), { userText: text, speechStoppedAt: this.now() });
    this.onChange(turn);
    return turn;
  }

  /** @param {RealtimeEvent} e a server event */
  handle(e) {
    const turn = this.#route(e);
    if (turn) this.#changed(turn);
  }

  /** The call is over: close open turns holding anything, with `outcome` if unfinished. @param {Turn['outcome']} outcome */
  closeAll(outcome) {
    for (const turn of this.turns.filter((t) => !t.closed)) {
      // A cut still on its way changes what was heard, not whether the turn finished.
      turn.awaitingCut = false;
      const finished = this.#done(turn);
      Object.assign(turn, { open: new Set(), playing: false });
      if (turn.userText.trim() || assistantText(turn) || turn.tools.length) this.#close(turn, finished ? 'completed' : outcome);
      else this.onChange(Object.assign(turn, { closed: true, discarded: true }));
    }
  }

  /** The turns of this tracker that started before `turn`, oldest first. @param {Turn} turn */
  before(turn) {
    const i = this.turns.indexOf(turn);
    return i < 0 ? [] : this.turns.slice(0, i);
  }

  /** A tool call's progress, from the relay. @param {ToolCall} call */
  toolUpdated(call) {
    const turn = this.owner.get(call.responseId);
    if (!turn) return;
    const i = turn.tools.findIndex((t) => t.callId === call.callId);
    turn.tools[i < 0 ? turn.tools.length : i] = call;
    this.#changed(turn);
  }

  /** @returns {Turn | undefined} the turn `e` changed */
  #route(e) {
    const id = e.item_id ?? e.item?.id;
    const rid = e.response_id ?? e.response?.id;
    /** @type {Turn | undefined} */
    const turn = this.owner.get(id) ?? this.owner.get(rid);
    const line = turn && (/^response\.output_(audio_transcript|text)\./.test(e.type) ? this.#line(turn, id) : turn.lines.find((l) => l.itemId === id));
    const set = (fields) => turn && Object.assign(turn, fields);
    switch (e.type) {
      case 'input_audio_buffer.speech_started':
      case 'input_audio_buffer.timeout_triggered':
        return this.#begin(id, e.type.endsWith('triggered'));
      case 'input_audio_buffer.speech_stopped':
        return set({ speechStoppedAt: this.now() });
      case 'input_audio_buffer.committed':
      case 'conversation.item.added':
      case 'conversation.item.done': {
        if (e.item && e.item.role !== 'user') return;
        const t = turn ?? (id ? this.#begin(id, false) : undefined);
        // Typed text, or a transcript the item carries when transcription events were lost.
        const part = e.item?.content?.find((c) => c.text || c.transcript);
        return t && part && !t.userDone ? Object.assign(t, { userText: part.text ?? part.transcript, userDone: true }) : t;
      }
      case 'conversation.item.input_audio_transcription.delta':
        return turn?.userDone ? turn : set({ userText: turn?.userText + (e.delta ?? '') });
      case 'conversation.item.input_audio_transcription.completed':
        return set({ userText: String(e.transcript ?? '').trim(), userDone: true });
      case 'conversation.item.input_audio_transcription.failed':
        return set({ userDone: true, userFailed: !turn?.userText });
      case 'response.created': {
        const t = this.current ?? this.#begin(null, true);
        this.owner.set(rid, t);
        t.open.add(rid);
        return Object.assign(t, { responded: true, followUp: false });
      }
      case 'response.output_item.added':
        if (turn && e.item?.type === 'message') this.#line(turn, id);
        return turn;
      case 'response.output_audio_transcript.delta':
        // Audio queued behind a reply still playing: it plays (and can be cut) after that one.
        if (turn && !turn.playing && this.before(turn).some((t) => t.playing && !t.closed)) turn.playing = true;
      // falls through
      case 'response.output_text.delta':
        if (line && !line.done) line.text += e.delta ?? '';
        return turn;
      case 'response.output_audio_transcript.done':
      case 'response.output_text.done':
        if (line) Object.assign(line, { text: String(e.transcript ?? e.text ?? line.text), done: true });
        return turn;
      case 'conversation.item.truncated':
        if (line) line.heardMs = Number(e.audio_end_ms) || 0;
        return set({ awaitingCut: false });
      case 'response.function_call_arguments.done':
        if (turn) this.#tool(turn, e.call_id, e.name, rid, e.arguments);
        return turn;
      case 'response.done': {
        if (!turn) return;
        turn.open.delete(rid);
        const calls = (e.response.output ?? []).filter((i) => i.type === 'function_call');
        for (const c of calls) this.#tool(turn, c.call_id, c.name, rid, c.arguments);
        // A response cut off asks for no follow-up: its calls never run (tool-relay.js).
        return set({ followUp: e.response.status === 'completed' && calls.some((c) => c.name !== 'wait_for_user') });
      }
      case 'output_audio_buffer.started':
        if (turn && turn.speechStoppedAt !== null && turn.firstAudioMs === null) turn.firstAudioMs = this.now() - turn.speechStoppedAt;
        this.#playedBefore(turn);
        return set({ playing: true });
      case 'output_audio_buffer.stopped':
        this.#playedBefore(turn);
        return set({ playing: false });
      case 'output_audio_buffer.cleared':
        this.#playedBefore(turn);
        if (turn) this.#awaitCut(turn);
        return set({ playing: false });
    }
  }

  /**
   * Audio plays in order: once a later reply's audio starts, stops or is cleared, every earlier
   * reply's has ended. A reply whose audio ran straight into the next one's gets no stop of its
   * own (one buffer, one stop), so its turn is closed here. @param {Turn | undefined} turn
   */
  #playedBefore(turn) {
    for (const earlier of turn ? this.before(turn) : this.turns) {
      if (earlier.playing && !earlier.closed) this.#changed(Object.assign(earlier, { playing: false }));
    }
  }

  /**
   * Cleared audio was cut: the truncation of the line playing says how much was heard. Unless it
   * came first, the turn waits for it, though not for ever: a lost one leaves the whole line.
   * @param {Turn} turn
   */
  #awaitCut(turn) {
    if (!turn.lines.length || turn.lines.some((l) => l.heardMs !== null)) return;
    turn.awaitingCut = true;
    this.later(() => {
      if (turn.closed || !turn.awaitingCut) return;
      turn.awaitingCut = false;
      this.#changed(turn);
    }, CUT_WAIT_MS);
  }

  /** @param {boolean} userDone true when there is nothing to transcribe */
  #begin(itemId, userDone) {
    const previous = this.current;
    /** @type {Turn} */
    const turn = {
      id: this.newId(), startedAt: this.now(), userText: '', userDone, userFailed: false, lines: [], tools: [],
      open: new Set(), responded: false, followUp: false, playing: false, awaitingCut: false, superseded: false, closed: false,
      discarded: false, outcome: 'completed', speechStoppedAt: null, firstAudioMs: null,
    };
    this.turns.push(turn);
    if (itemId) this.owner.set(itemId, turn);
    if (previous) this.#changed(Object.assign(previous, { superseded: true }));
    return turn;
  }

  /** @param {Turn} turn */
  #line(turn, itemId) {
    this.owner.set(itemId, turn);
    return turn.lines.find((l) => l.itemId === itemId) ?? turn.lines[turn.lines.push({ itemId, text: '', done: false, heardMs: null }) - 1];
  }

  /** @param {Turn} turn */
  #tool(turn, callId, name, responseId, args) {
    if (!turn.tools.some((t) => t.callId === callId)) turn.tools.push(newToolCall(callId, name, responseId, args, this.now()));
  }

  /**
   * A superseded turn waits for no follow-up: every new response goes to the newest turn, and
   * the relay's response.create may be refused anyway (conversation_already_has_active_response).
   * @param {Turn} t
   */
  #done(t) {
    const waiting = t.followUp && !t.superseded;
    return t.userDone && !t.open.size && !waiting && !t.playing && !t.awaitingCut && (t.responded || t.superseded) && t.tools.every((c) => c.status !== 'running');
  }

  /** @param {Turn} turn */
  #changed(turn) {
    this.onChange(turn);
    if (!turn.closed && this.#done(turn)) this.#close(turn, 'completed');
  }

  /** @param {Turn} turn @param {Turn['outcome']} outcome */
  #close(turn, outcome) {
    this.onChange(Object.assign(turn, { closed: true, outcome }));
    this.onClose(turn);
  }
}

// The gateway's bounds (TurnRequest): text 8000 characters, marks 0..600000 ms, 20 tool calls.

/**
 * `text` cut to at most `max` characters as the gateway counts them (code points), never
 * between the halves of a surrogate pair: a lone half is text no store can keep, so the
 * gateway refuses the whole body, and a refused turn is dropped, never retried.
 */
export const clip = (text, max) => (text.length <= max ? text : Array.from(text).slice(0, max).join(''));
/**
 * The size of `value` as the gateway bounds it: the UTF-8 bytes of Python's json.dumps, whose
 * separators carry a space (", ", ": "), one byte more each than JSON.stringify's. Counting
 * JavaScript's string length instead (UTF-16 units) lets non-ASCII text through at up to three
 * times its length, and the gateway refuses the whole turn.
 */
export function jsonBytes(value) {
  const separators = (v) => {
    if (!v || typeof v !== 'object') return 0;
    const items = Array.isArray(v) ? v : Object.values(v);
    // ", " between items, and ": " after each key.
    const own = Math.max(0, items.length - 1) + (Array.isArray(v) ? 0 : items.length);
    return items.reduce((n, item) => n + separators(item), own);
  };
  return new TextEncoder().encode(JSON.stringify(value)).length + separators(value);
}
// A stored output is bounded at 16 KiB (16384 bytes); the margin allows for numbers, which the
// two languages may write differently.
const OUTPUT_MAX_BYTES = 15000;
const mark = (ms) => (typeof ms === 'number' && ms >= 0 ? Math.min(Math.round(ms * 10) / 10, 600000) : undefined);
// A call that never ran (its response was cut off) is a failed one to the gateway, with its code.
const STATUS = { running: 'started', done: 'completed', failed: 'failed', skipped: 'failed' };

/**
 * The body of POST /turn for a closed turn.
 * @param {Turn} turn @param {LatencyMarks} marks its session's
 * @param {Turn[] | null} [earlier] the turns said before it, for an incognito turn only: their
 *   recent lines go with it to the crisis screen (the one context it can have), kept nowhere
 */
export function turnRequest(turn, marks, earlier = null) {
  const latency = {
    session_minted_ms: mark(marks.session_minted_ms),
    connected_ms: mark(marks.connected_ms),
    first_audio_ms: mark(turn.firstAudioMs),
    tool_round_trips_ms: turn.tools.filter((t) => t.ms !== null).slice(0, 20).map((t) => mark(t.ms)),
  };
  return {
    client_turn_id: turn.id,
    user_text: clip(turn.userText, 8000),
    assistant_text: clip(assistantText(turn), 8000),
    started_at: new Date(turn.startedAt).toISOString(),
    tool_calls: turn.tools.slice(0, 20).map((c) => ({
      tool_name: c.name,
      status: STATUS[c.status],
      // A stored output is bounded at 16 KiB: a larger one is left out, never cut.
      ...(c.output && jsonBytes(c.output) < OUTPUT_MAX_BYTES && { output: c.output }),
      ...(STATUS[c.status] === 'failed' && { error: String(c.sent || c.status === 'skipped' ? (c.output?.error?.code ?? 'failed') : 'not_delivered').slice(0, 500) }),
    })),
    outcome: turn.outcome,
    latency: JSON.parse(JSON.stringify(latency)),
    ...(earlier && { transcript: recentLines(earlier) }),
  };
}

/** The recent conversation as /tools and /turn take it: the last lines, each bounded. @param {Turn[]} turns */
export const recentLines = (turns, max = 20) =>
  turns.flatMap((t) => [{ role: 'user', text: t.userText.trim() }, { role: 'assistant', text: assistantText(t) }])
    .filter((l) => l.text).slice(-max).map((l) => ({ ...l, text: clip(l.text, 1000) }));

/**
 * A system message giving a new Realtime session the recent turns, so after a reconnect the
 * assistant carries on instead of starting over; null when there is nothing to carry. A tool's
 * output the dropped call could not take goes with it: the model never had it.
 * @param {Turn[]} turns
 */
export function continuationItem(turns) {
  const said = recentLines(turns, 12).map((l) => `${l.role === 'user' ? 'User' : 'Assistant'}: ${l.text}`).join('\n').slice(-4000);
  const undelivered = turns.flatMap((t) => t.tools).filter((c) => c.status === 'failed' && !c.sent).slice(-3)
    .map((c) => `The result of your ${c.name} call did not reach you before the call dropped: ${clip(JSON.stringify(c.output ?? {}), 2000)}`);
  const lost = undelivered.length ? `\n${undelivered.join('\n')}` : '';
  const text = `The call was reconnected. The conversation so far, most recent last:\n${said}${lost}\nCarry on from here; do not greet again or repeat yourself.`;
  return said || lost ? { type: 'conversation.item.create', item: { type: 'message', role: 'system', content: [{ type: 'input_text', text }] } } : null;
}
