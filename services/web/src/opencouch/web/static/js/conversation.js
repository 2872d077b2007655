// A voice conversation: one thread over one or more Realtime sessions ("segments"). It owns the
// mic, the call, turn pairing, the tool relay, the turn outbox and the end, and tells the pages
// as DOM events: state, turn, tool, event (data channel, in/out), session (redacted), latency,
// level, finalization, history, outbox, gateway (each API reply) and problem.

import { ApiError, asApiError } from './api.js';
import { RealtimeCall } from './call.js';
import { keepThreadSecret, liveToken, loadConversation, saveConversation, threadSecret } from './conversation-store.js';
import { redacted } from './event-log.js';
import { newTurnId, randomHex } from './ids.js';
import { LevelMeter, openMicrophone } from './mic.js';
import { Outbox, backoff, verdict } from './outbox.js';
import { micProblem } from './presenters.js';
import { ToolRelay, localError } from './tool-relay.js';
import { TurnTracker, continuationItem, recentLines, turnRequest } from './turns.js';

const SETTLE_MS = 30000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @typedef {{reply: any, marks: LatencyMarks, call: RealtimeCall, tracker: TurnTracker, lost: boolean}} Segment */
/** @typedef {Attempt & {body?: any, message?: string}} Outcome */

export class VoiceConversation extends EventTarget {
  /** @param {{api: import('./api.js').VoiceApi, storage: Storage | null, audio: HTMLAudioElement}} deps */
  constructor(deps) {
    super();
    this.api = deps.api;
    this.storage = deps.storage;
    this.audio = deps.audio;
    this.state = 'idle';
    /** @type {Segment | null} */
    this.segment = null;
    /** @type {Turn[]} closed turns, the context a reconnect gives the assistant */
    this.closedTurns = [];
    /** @type {SessionSetup | null} */
    this.setup = null;
    /** @type {MediaStream | null} */
    this.mic = null;
    /** @type {LevelMeter | null} */
    this.meter = null;
    /** @type {Promise<void> | null} */
    this.ending = null;
    this.pendingCreate = false;
    this.outbox = new Outbox({
      storage: deps.storage,
      send: (entry) => this.#attempt('turn', () => this.api.turn(entry.token, entry.body)),
      onChange: (entry, state) => this.#emit('outbox', { entry, state }),
    });
  }

  /** @param {string} type @param {any} [detail] */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {string} state @param {string} [reason] */
  #state(state, reason) {
    this.state = state;
    this.#emit('state', { state, reason });
  }

  /**
   * On page load: deliver what an earlier visit left in the outbox, then end that visit's
   * session if a reload left it open, so it is finalized and no longer counts as open.
   */
  async resume() {
    await this.outbox.flush();
    const saved = loadConversation(this.storage);
    const last = liveToken(saved);
    if (!last || last.ended || this.segment) return;
    await this.outbox.settled(last.session_id, SETTLE_MS);
    const { status } = await this.#attempt('end', () => this.api.end(last.token, { save: true }));
    if (status && status < 500) this.#markEnded(last.session_id);
  }

  /** @param {SessionSetup} setup */
  async connect(setup) {
    if (!['idle', 'ended', 'disconnected'].includes(this.state)) return;
    Object.assign(this, { setup, ending: null });
    this.#state('connecting');
    try {
      this.mic = await openMicrophone();
    } catch (error) {
      this.#state('idle');
      return this.#emit('problem', { code: 'microphone', message: micProblem(error) });
    }
    try {
      this.meter = new LevelMeter(this.mic, (value) => this.#emit('level', value));
    } catch {
      // No Web Audio: everything but the level meter still works.
    }
    try {
      await this.#startSegment(null);
    } catch (error) {
      this.#stopMic();
      this.#state('idle');
      return this.#emit('problem', asApiError(error));
    }
    this.#state('connected');
    if (setup.memory_mode === 'persistent') void this.loadHistory();
  }

  /** A voice session and its call; `context` is the continuation item after a reconnect. */
  async #startSegment(context) {
    const setup = /** @type {SessionSetup} */ (this.setup);
    const secret = threadSecret(this.storage, setup.thread_id);
    const started = performance.now();
    const { body: reply } = await this.api.createSession({ ...setup, ...(secret && { thread_secret: secret }) });
    /** @type {LatencyMarks} */
    const marks = { session_minted_ms: performance.now() - started };
    if (reply.thread_secret) keepThreadSecret(this.storage, setup.thread_id, reply.thread_secret);
    const last = { session_id: reply.session_id, token: reply.token, token_expires_at: reply.token_expires_at };
    saveConversation(this.storage, { ...setup, user_id: setup.user_id ?? '', last });
    this.#emit('session', redacted(reply));
    const tracker = new TurnTracker({
      newId: newTurnId,
      onChange: (turn) => this.#emit('turn', turn),
      onClose: (turn) => this.#closed(segment, turn),
    });
    const relay = new ToolRelay({
      run: (call) => this.#runTool(segment, call),
      send: (event) => segment.call.send(event),
      onUpdate: (call) => (tracker.toolUpdated(call), this.#emit('tool', call)),
    });
    const call = new RealtimeCall({
      url: reply.realtime_calls_url, secret: reply.client_secret.value, audio: this.audio,
      mic: /** @type {MediaStream} */ (this.mic),
      onEvent: (event) => {
        this.#emit('event', { direction: 'in', event });
        if (segment.lost) return;
        tracker.handle(event);
        relay.handle(event);
        this.#received(segment, event);
      },
      onSent: (event) => this.#emit('event', { direction: 'out', event }),
      onEnd: (reason) => void this.#lost(segment, reason),
    });
    /** @type {Segment} */
    const segment = { reply, marks, call, tracker, lost: false };
    const connecting = performance.now();
    try {
      await call.connect();
    } catch (error) {
      call.close();
      void this.#retire(segment);
      throw error;
    }
    marks.connected_ms = performance.now() - connecting;
    this.#emit('latency', { ...marks });
    this.segment = segment;
    if (context) call.send(context);
  }

  /** @param {Segment} segment @param {RealtimeEvent} event */
  #received(segment, event) {
    if (event.type === 'response.done' && this.pendingCreate && !segment.tracker.activeResponses) {
      this.pendingCreate = false;
      segment.call.send({ type: 'response.create' });
    }
    if (event.type === 'error' && event.error?.code === 'session_expired') void this.#lost(segment, 'session_expired');
  }

  /** @param {Segment} segment @param {Turn} turn */
  #closed({ reply, marks }, turn) {
    this.closedTurns.push(turn);
    const body = turnRequest(turn, marks);
    this.#emit('latency', body.latency);
    void this.outbox.add({
      id: turn.id, sessionId: reply.session_id, token: reply.token, tokenExpiresAt: reply.token_expires_at,
      body, persist: reply.memory_mode === 'persistent',
    });
  }

  /**
   * POST /tools, retried while the gateway is briefly unavailable; any failure becomes an output
   * the model can speak around, so the conversation never waits for ever.
   * @param {Segment} segment @param {ToolCall} call @returns {Promise<ToolResult>}
   */
  async #runTool(segment, call) {
    const turn = segment.tracker.owner.get(call.responseId);
    const body = {
      tool_name: call.name, call_id: call.callId, arguments: call.arguments ?? {},
      current_user_message: (turn?.userText ?? '').slice(0, 8000),
      transcript: recentLines([...this.closedTurns, ...(turn ? [turn] : [])]),
      ...(turn && { client_turn_id: turn.id }),
    };
    const deadline = Date.now() + 20000;
    for (let tries = 1; ; tries += 1) {
      const reply = await this.#attempt('tools', () => this.api.tool(segment.reply.token, body));
      if (reply.body) return { ok: reply.body.ok !== false, output: reply.body.output ?? {} };
      const wait = backoff(tries, reply.retryAfterMs);
      if (verdict(reply) !== 'retry' || Date.now() + wait > deadline) {
        return { ok: false, output: localError('tool_unavailable', `${call.name} could not run: ${reply.message}`) };
      }
      await sleep(wait);
    }
  }

  /**
   * The call ended without the person asking (session_expired, a dropped connection): a new
   * session on the same thread carries on, given the recent turns. Handled once per call.
   * @param {Segment} segment
   */
  async #lost(segment, reason) {
    if (segment.lost || segment !== this.segment || this.ending) return;
    segment.lost = true;
    segment.tracker.closeAll('connection_interrupted');
    segment.call.close();
    this.#emit('event', { direction: 'in', event: { type: 'client.call_ended', reason } });
    void this.#retire(segment);
    this.#state('reconnecting', reason);
    for (const delay of [300, 2000, 5000]) {
      await sleep(delay);
      if (this.ending) return;
      try {
        await this.#startSegment(continuationItem(this.closedTurns));
        return this.#state('connected');
      } catch {
        // Tried again after the next delay.
      }
    }
    this.segment = null;
    this.#stopMic();
    this.#state('disconnected', reason);
    this.#emit('problem', {
      code: 'connection_lost',
      message: 'The connection was lost and could not be restored. What was said so far is kept; press Connect to carry on.',
    });
  }

  /** End an earlier session of this conversation once its turns are delivered, so it is finalized. @param {Segment} segment */
  async #retire({ reply }) {
    await this.outbox.settled(reply.session_id, SETTLE_MS);
    await this.#attempt('end', () => this.api.end(reply.token, { save: true }));
  }

  /** Type instead of speaking; the reply is asked for once no response is running. */
  sendText(text) {
    const segment = this.segment;
    text = text.trim();
    if (!segment || segment.lost || this.state !== 'connected' || !text) return false;
    const id = `item_${randomHex(12)}`;
    segment.tracker.typed(text, id);
    segment.call.send({ type: 'conversation.item.create', item: { id, type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
    if (segment.tracker.activeResponses) this.pendingCreate = true;
    else segment.call.send({ type: 'response.create' });
    return true;
  }

  /**
   * Hang up and end the session, calling /end only once every pending turn has settled. A second
   * call returns the same promise.
   * @param {{save: boolean, feedback?: string}} options
   */
  end(options) {
    return (this.ending ??= this.#finish(options));
  }

  async #finish(options) {
    const segment = this.segment;
    this.#state('ending');
    if (segment && !segment.lost) segment.tracker.closeAll('connection_interrupted');
    segment?.call.close();
    this.#stopMic();
    this.segment = null;
    if (!segment) return this.#state('ended');
    const { reply } = segment;
    await this.outbox.settled(reply.session_id, SETTLE_MS);
    const end = () => this.#attempt('end', () => this.api.end(reply.token, options));
    let result = await end();
    for (let tries = 1; verdict(result) === 'retry' && tries < 4; tries += 1) {
      await sleep(backoff(tries, result.retryAfterMs));
      result = await end();
    }
    this.#markEnded(reply.session_id);
    this.#state('ended');
    this.#emit('finalization', result.body ?? { status: 'failed', detail: result.message });
    // 202: finalization still running; ask again, more slowly, for up to three minutes.
    for (let tries = 1; result.status === 202 && tries < 40; tries += 1) {
      await sleep(Math.min(10000, 1000 * tries));
      const next = await this.#attempt('finalization', () => this.api.finalization(reply.token, reply.session_id));
      if (next.body) this.#emit('finalization', (result = next).body);
    }
  }

  #markEnded(sessionId) {
    const saved = loadConversation(this.storage);
    const last = saved.last;
    if (last && last.session_id === sessionId) saveConversation(this.storage, { ...saved, last: { ...last, ended: true } });
  }

  /**
   * A gateway call that never throws: its status and body, or its error; each one is reported.
   * @param {string} name @param {() => Promise<{status: number, body: any}>} request @returns {Promise<Outcome>}
   */
  async #attempt(name, request) {
    try {
      const reply = await request();
      this.#emit('gateway', { call: name, status: reply.status, reply: reply.body });
      return reply;
    } catch (error) {
      const { status, code, message, retryAfterMs } = asApiError(error);
      this.#emit('gateway', { call: name, status, error: { code, message } });
      return { status, code, message, retryAfterMs };
    }
  }

  /** The live session's token, else the last one saved while still valid. */
  #token() {
    return this.segment?.reply.token ?? liveToken(loadConversation(this.storage))?.token;
  }

  /** Earlier turns of the thread (the page before `before`); quiet when unavailable. @param {string | null} [before] */
  async loadHistory(before = null) {
    const token = this.#token();
    if (!token) return;
    const threadId = this.setup?.thread_id ?? loadConversation(this.storage).thread_id;
    const { body } = await this.#attempt('history', () => this.api.threadTurns(token, threadId, before));
    if (Array.isArray(body?.turns)) this.#emit('history', { ...body, older: Boolean(before) });
  }

  /** Forget everything kept for this user (or thread); throws an ApiError. */
  async erase() {
    const token = this.#token();
    if (!token) throw new ApiError('token_missing', 'Connect once first, so the service knows whose memory to erase.', 0);
    return (await this.api.erase(token)).body;
  }

  /** The page is going away: open turns go to the outbox, kept for the next visit. */
  leave() {
    if (this.segment && !this.segment.lost) this.segment.tracker.closeAll('connection_interrupted');
    this.segment?.call.close();
  }

  #stopMic() {
    this.meter?.stop();
    for (const track of this.mic?.getTracks() ?? []) track.stop();
    Object.assign(this, { meter: null, mic: null });
    this.#emit('level', 0);
  }
}
