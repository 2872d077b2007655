// One conversation (a thread) over one or more Realtime sessions, "segments": the mic, the call,
// turn pairing, tool relay, turn outbox and the end. Pages listen for its DOM events: state, turn,
// tool, event (data channel in/out), session, latency, level, finalization, history, outbox,
// gateway (each API reply) and problem.

import { ApiError, asApiError } from './api.js';
import { RealtimeCall } from './call.js';
import {
  END_LEASE_MS, forgetPendingEnd, forgetTabSession, keepLastSession, keepPendingEnd, keepThreadSecret, liveSession, loadConversation, markSessionEnded,
  pendingEnds, sendableEnd, tabId, threadSecret, triedPendingEnd,
} from './conversation-store.js';
import { redacted } from './event-log.js';
import { newThreadSecret, newTurnId, randomHex } from './ids.js';
import { LevelMeter, openMicrophone } from './mic.js';
import { Outbox, backoff, verdict } from './outbox.js';
import { micProblem } from './presenters.js';
import { ToolRelay, localError } from './tool-relay.js';
import { TurnTracker, clip, continuationItem, recentLines, turnRequest } from './turns.js';

const SETTLE_MS = 30000;
/** Tries of the person's /end: about 7 s of waits between them (longer on Retry-After). */
const END_TRIES = 4;
/**
 * Tries of the /end of a session no longer in use (a dropped call's, a reload's): about 30 s of
 * waits. A call drops mostly when the network does, so the first try is likely to fail too.
 */
const RETIRE_TRIES = 6;
/** How long a finalization still in progress is polled: past the finalizer's 30-minute wait for memory. */
export const FINALIZATION_POLL_MS = 35 * 60 * 1000;
const TAB_KEY = 'opencouch.tab-session';
/** How often a tab trying a kept End says so: well within END_LEASE_MS, after which another tab sends it. */
const END_HEARTBEAT_MS = END_LEASE_MS / 4;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A step of ending that must not stop the rest: whatever it throws is reported (the console, the
 * browser tests' guard against uncaught errors) and the end goes on to /end, so a bug in hanging
 * up can no longer leave "Ending the session…" on screen with the session still open.
 * @param {() => unknown} step
 */
async function despite(step) {
  try {
    await step();
  } catch (error) {
    (globalThis.reportError ?? console.error)(error);
  }
}

/**
 * The wait before finalization poll `tries + 1`, or null once `elapsedMs` of polling is enough.
 * @param {number} tries @param {number} elapsedMs @returns {number | null}
 */
export const finalizationPollDelay = (tries, elapsedMs) => (elapsedMs < FINALIZATION_POLL_MS ? Math.min(10000, 1000 * tries) : null);

/**
 * How a session the person did not end themselves is ended. A call that dropped or expired, or
 * one that never connected, is `continued`: the gateway closes it now and finalizes it with the
 * conversation's last /end, so "End without saving" covers every part of the conversation.
 */
export const CONTINUED_END = Object.freeze({ continued: true });

/** What the page says when Realtime could not answer: never the model's or the person's words. */
export const ANSWER_PROBLEM = "The assistant couldn't answer. Please say that again.";

/** What the page says when the person's End never reached the gateway: the session is still open. */
export const END_PROBLEM = 'The session could not be ended: the service did not answer. Check your connection, then press End again.';

/** What the page says of turns still unsent when the End could wait no longer: the ended session refuses them. */
export const unsavedTurns = (n) =>
  n === 1 ? 'The last thing you said could not be sent before the session ended, so it was not saved.'
    : `Your last ${n} turns could not be sent before the session ended, so they were not saved.`;

/** @typedef {{reply: any, marks: LatencyMarks, call: RealtimeCall, tracker: TurnTracker, relay: ToolRelay, lost?: boolean}} Segment */
/**
 * A session of this conversation ended as continued (its call dropped): `answered` settles once
 * its /end has been tried, true if the gateway answered it.
 * @typedef {{sessionId: string, token: string, expiresAt: number, persistent: boolean, answered: Promise<boolean>}} Continued
 */
/** @typedef {import('./conversation-store.js').PendingEnd} PendingEnd */

export class VoiceConversation extends EventTarget {
  /** @param {import('./api.js').VoiceApi} api @param {Storage | null} storage @param {HTMLAudioElement} audio */
  constructor(api, storage, audio) {
    super();
    this.api = api;
    this.storage = storage;
    this.audio = audio;
    this.state = 'idle';
    /** @type {Segment | null} */
    this.segment = null;
    /** The session whose call was lost for good ("disconnected"): the person's End decides it.
     * @type {Segment | null} */
    this.dropped = null;
    /** This conversation's sessions ended as continued: its End settles them first. @type {Continued[]} */
    this.continued = [];
    /** @type {Turn[]} closed turns: the context a reconnect gives the assistant */
    this.closedTurns = [];
    /** @type {any} the setup of the last connect */
    this.setup = null;
    /** @type {MediaStream | null} */
    this.mic = null;
    /** The person muted the microphone; kept for the next connect of this page. */
    this.muted = false;
    /** @type {LevelMeter | null} */
    this.meter = null;
    /** @type {Promise<void> | null} */
    this.ending = null;
    /**
     * The session whose End never reached the gateway ("end_failed"), with the person's choice:
     * a second End, or the next Connect, ends it (kept in storage too, for a reload). @type {PendingEnd | null}
     */
    this.unended = null;
    /** The sessions whose End this page is sending now: a retry of the kept ones leaves them be. */
    this.sending = new Set();
    /** This tab's id (the same after a reload): the Ends it keeps are its own to send, and
     * another tab's are left to that tab while it still tries them (sendableEnd). */
    this.tab = tabId();
    /** A typed message waits for its response.create: a response runs or a tool output is unsent. */
    this.pendingCreate = false;
    /** Counts conversations: a reconnect of an earlier one finds it changed and stops. */
    this.epoch = 0;
    /**
     * The problem shown, if any. It belongs to the call (or the attempt at one) it came from: a
     * new call, the loss of its call and the End take it away, so an earlier call's problem is
     * never shown again, or focused, when a later one ends. An answer problem the next answer
     * takes away too. @type {{code: string, message: string} | null}
     */
    this.problem = null;
    this.outbox = new Outbox({
      storage,
      send: (entry) => this.#attempt('turn', () => api.turn(entry.token, entry.body)),
      onChange: (entry, state) => this.#emit('outbox', { entry, state }),
    });
  }

  /** @param {string} type @param {any} [detail] */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {string} state @param {string} [reason] */
  #state(state, reason) {
    this.#emit('state', { state: (this.state = state), reason });
  }

  /**
   * On load: deliver what an earlier visit left, then end the session a reload of this tab left
   * open (sessionStorage is per tab: a session another tab is using is left alone), and send
   * each End the person pressed that the gateway has not answered (it was still waiting, or
   * never got through), as they chose.
   */
  async resume() {
    // Which session is left is decided before waiting: meanwhile the person may press Connect,
    // and the session that starts is theirs, not the reload's. One the person ended goes with
    // the kept Ends, with their choice, not the default "save".
    const last = liveSession(this.storage);
    const chosen = pendingEnds(this.storage).some((e) => e.session_id === last?.session_id);
    const left = last && !last.ended && !chosen && !this.segment && globalThis.sessionStorage?.getItem(TAB_KEY) === last.session_id;
    await this.outbox.flush();
    await Promise.all([left && this.#retire(last.session_id, last.token, { save: true }), this.#sendPending()]);
  }

  /**
   * Send each End the gateway has not answered yet (kept in storage: this visit's or an earlier
   * one's), as the person chose, but those this page is sending now, and those another tab of
   * the browser is: that tab's End must go after its turns, which are in that tab's outbox, not
   * this page's. Left alone by its tab for a while (closed, or it gave up), it is sent here too.
   * Each is forgotten once the gateway answered; one that fails again stays kept for the next
   * Connect or reload, never left to the gateway's sweep, which would end its session as saved.
   * Never throws.
   * @param {PendingEnd[]} [held] Ends this page holds, in case storage (blocked, full) does not
   */
  async #sendPending(held = []) {
    const kept = pendingEnds(this.storage);
    const ends = new Map([...held, ...kept].map((e) => [e.session_id, e]));
    const theirs = new Set(kept.filter((e) => !sendableEnd(e, this.tab)).map((e) => e.session_id));
    const unsent = [...ends.values()].filter((e) => !this.sending.has(e.session_id) && !theirs.has(e.session_id));
    await Promise.all(unsent.map(async ({ session_id: id, token, end }) => {
      this.sending.add(id);
      // This tab's now: other tabs leave it be while this one tries it.
      if (await this.#trying(id, this.#retire(id, token, end))) forgetPendingEnd(this.storage, id);
      this.sending.delete(id);
    }));
  }

  /** @param {SessionSetup} setup */
  async connect(setup) {
    if (!['idle', 'ended', 'disconnected', 'end_failed'].includes(this.state)) return;
    // Every End that never got through (this page's, an earlier try's, an earlier visit's) is
    // sent as the person chose while the next session starts. Forgotten only once answered: the
    // next session replaces the conversation's `last`, so a kept End is all that is left of it.
    const unended = this.unended;
    this.unended = null;
    void this.#sendPending(unended ? [unended] : []);
    // Only a conversation carried on where it was lost (same thread, same memory) keeps what was
    // said: nothing of another conversation goes into this one's tools, turns or reconnects.
    const previous = this.setup;
    const carryOn = this.state === 'disconnected' && previous?.thread_id === setup.thread_id && previous?.memory_mode === setup.memory_mode;
    // Sessions of a conversation not carried on are not this one's End to decide.
    if (!carryOn) Object.assign(this, { closedTurns: [], continued: [] });
    Object.assign(this, { setup, ending: null, dropped: null, pendingCreate: false, epoch: this.epoch + 1 });
    this.#clearProblem();
    this.#state('connecting');
    try {
      this.mic = await openMicrophone();
      this.setMuted(this.muted);
    } catch (error) {
      this.#state('idle');
      return this.#problem({ code: 'microphone', message: micProblem(error) });
    }
    try {
      this.meter = new LevelMeter(this.mic, (value) => this.#emit('level', value));
    } catch {
      // No Web Audio: all but the level meter still works.
    }
    try {
      // Carried on: the new session hears what was said, as after a reconnect of its own.
      await this.#start(carryOn ? continuationItem(this.closedTurns) : null);
    } catch (error) {
      this.#stopMic();
      this.#state('idle');
      return this.#problem(asApiError(error));
    }
    this.#state('connected');
    if (setup.memory_mode === 'persistent') void this.loadHistory();
  }

  /** A voice session and its call; `context` carries the conversation over after a reconnect. */
  async #start(context) {
    const { setup, epoch } = this;
    // The person ended this conversation (and may have started another) meanwhile.
    const over = () => this.ending || epoch !== this.epoch;
    const ended = () => new ApiError('ended', 'The conversation has ended.', 0);
    // The page makes a new thread's secret and keeps it before asking: the gateway binds the
    // thread to it, so a reply lost on the way (a timeout) cannot lock this browser out.
    let secret = threadSecret(this.storage, setup.thread_id);
    if (!secret) keepThreadSecret(this.storage, setup.thread_id, (secret = newThreadSecret()));
    const started = performance.now();
    const { body: reply } = await this.api.createSession({ ...setup, thread_secret: secret });
    if (over()) {
      void this.#retire(reply.session_id, reply.token, CONTINUED_END);
      throw ended();
    }
    const marks = { session_minted_ms: performance.now() - started };
    if (reply.thread_secret) keepThreadSecret(this.storage, setup.thread_id, reply.thread_secret);
    const incognito = reply.memory_mode !== 'persistent';
    const last = { session_id: reply.session_id, token: reply.token, token_expires_at: reply.token_expires_at };
    // An incognito session's token stays in this tab, and only until the session has ended.
    keepLastSession(this.storage, { user_id: '', ...setup }, last, !incognito);
    globalThis.sessionStorage?.setItem(TAB_KEY, last.session_id);
    this.#emit('session', redacted(reply));
    // What was said before this session (a reconnect's earlier sessions), for the crisis screen.
    const carried = [...this.closedTurns];
    const tracker = new TurnTracker({
      newId: newTurnId,
      onChange: (turn) => this.#emit('turn', turn),
      onClose: (turn) => {
        this.closedTurns.push(turn);
        // An incognito turn carries the lines said before it: the service keeps nothing to
        // screen it in context with. A persistent turn's context is kept by the service.
        const body = turnRequest(turn, marks, incognito ? [...carried, ...tracker.before(turn)] : null);
        this.#emit('latency', body.latency);
        void this.outbox.add({ id: turn.id, sessionId: last.session_id, token: last.token, tokenExpiresAt: last.token_expires_at, body, persist: !incognito });
      },
    });
    const relay = new ToolRelay({
      run: (call) => this.#runTool(segment, call),
      send: (event) => {
        // The relay's response.create answers a message typed meanwhile too.
        if (event.type === 'response.create') this.pendingCreate = false;
        return call.send(event);
      },
      onUpdate: (c) => (tracker.toolUpdated(c), this.#emit('tool', c)),
      onSettled: () => this.#askPending(segment),
    });
    const call = new RealtimeCall({
      url: reply.realtime_calls_url, secret: reply.client_secret.value, audio: this.audio, mic: /** @type {MediaStream} */ (this.mic),
      onSent: (event) => this.#emit('event', { direction: 'out', event }),
      onEnd: (reason) => void this.#lost(segment, reason),
      onEvent: (event) => {
        this.#emit('event', { direction: 'in', event });
        if (segment.lost) return;
        tracker.handle(event);
        relay.handle(event);
        if (event.type === 'response.done') this.#askPending(segment);
        if (event.error?.code === 'session_expired') void this.#lost(segment, 'session_expired');
        // A call the conversation no longer uses (ended) has no problem to show.
        else if (segment === this.segment) this.#answered(event);
      },
    });
    /** @type {Segment} */
    const segment = { reply, marks, call, tracker, relay };
    const connecting = performance.now();
    try {
      await call.connect();
      // The person ended the conversation while this reconnect was on its way.
      if (over()) throw ended();
    } catch (error) {
      call.close();
      void this.#retire(last.session_id, last.token, CONTINUED_END);
      throw error;
    }
    this.#emit('latency', Object.assign(marks, { connected_ms: performance.now() - connecting }));
    Object.assign(this, { segment, pendingCreate: false });
    if (context) call.send(context);
  }

  /**
   * POST /tools, retried while the gateway is briefly away; a failure becomes an output the
   * model can speak around, so the conversation never hangs on a tool.
   * @param {Segment} segment @param {ToolCall} call @returns {Promise<ToolResult>}
   */
  async #runTool(segment, call) {
    const turn = segment.tracker.owner.get(call.responseId);
    const body = {
      tool_name: call.name, call_id: call.callId, arguments: call.arguments ?? {},
      current_user_message: clip(turn?.userText ?? '', 8000),
      transcript: recentLines([...this.closedTurns, ...(turn ? [turn] : [])]),
      ...(turn && { client_turn_id: turn.id }),
    };
    const deadline = Date.now() + 20000;
    for (let tries = 1; ; tries += 1) {
      const reply = await this.#attempt('tools', () => this.api.tool(segment.reply.token, body), body);
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
   * session on the same thread carries on with the recent turns. Once per call. The old session
   * is ended as continued: closed, but finalized only by the conversation's last /end.
   * @param {Segment} segment @param {string} reason
   */
  async #lost(segment, reason) {
    if (segment.lost || segment !== this.segment || this.ending) return;
    // Once the person ends this conversation, or starts another, this loop has nothing to do.
    const epoch = this.epoch;
    const over = () => this.ending || epoch !== this.epoch;
    segment.lost = true;
    segment.tracker.closeAll('connection_interrupted');
    segment.call.close();
    this.#emit('event', { direction: 'in', event: { type: 'client.call_ended', reason } });
    const { session_id: sessionId, token, token_expires_at: expiresAt, memory_mode: mode } = segment.reply;
    const answered = this.#retire(sessionId, token, CONTINUED_END);
    this.continued.push({ sessionId, token, expiresAt, persistent: mode === 'persistent', answered });
    this.#clearProblem();
    this.#state('reconnecting', reason);
    for (const delay of [300, 2000, 5000]) {
      await sleep(delay);
      if (over()) return;
      try {
        await this.#start(continuationItem(this.closedTurns));
        return this.#state('connected');
      } catch {
        // Tried again after the next delay.
      }
    }
    if (over()) return;
    this.segment = null;
    this.dropped = segment;
    this.#stopMic();
    this.#state('disconnected', reason);
    this.#problem({ code: 'connection_lost', message: 'The connection was lost and could not be restored. What was said so far is kept; press Connect to carry on.' });
  }

  /**
   * End a session no longer in use once its turns are in, retried while the gateway is away.
   * Never throws; true once the gateway answered (ended, or refused for good: nothing to do).
   * @param {string} sessionId @param {string} token @param {import('./api.js').EndBody} body
   * @returns {Promise<boolean>}
   */
  async #retire(sessionId, token, body) {
    await despite(() => this.outbox.settled(sessionId, SETTLE_MS));
    const answered = verdict(await this.#endRetried(token, body, RETIRE_TRIES)) !== 'retry';
    if (answered) markSessionEnded(this.storage, sessionId);
    return answered;
  }

  /** The gateway answered the person's End of `sessionId`: it is ended, and its End kept no more.
   * @param {string} sessionId */
  #ended(sessionId) {
    markSessionEnded(this.storage, sessionId);
    forgetPendingEnd(this.storage, sessionId);
  }

  /**
   * POST /end until the gateway answers (a 2xx, or a refusal no retry can change: 401, 404,
   * 409…), at most `tries` times, waiting as `backoff` says between them. Never throws.
   * @param {string} token @param {import('./api.js').EndBody} body @param {number} tries
   */
  async #endRetried(token, body, tries) {
    let result = await this.#attempt('end', () => this.api.end(token, body), body);
    for (let done = 1; verdict(result) === 'retry' && done < tries; done += 1) {
      await sleep(backoff(done, result.retryAfterMs));
      result = await this.#attempt('end', () => this.api.end(token, body), body);
    }
    return result;
  }

  /**
   * `work`, this tab's try of the kept End of `sessionId` (its turns, then its /end): said in
   * storage now and every END_HEARTBEAT_MS until it settles, so another tab leaves that End to
   * this one meanwhile (its turns are in this page's outbox, and go first), and sends it only
   * once this tab has left it alone for END_LEASE_MS (closed, or gave up). Nothing is said of a
   * session whose End is not kept.
   * @template T @param {string} sessionId @param {Promise<T>} work @returns {Promise<T>}
   */
  async #trying(sessionId, work) {
    const settled = work.then(() => true, () => true);
    for (;;) {
      triedPendingEnd(this.storage, sessionId, this.tab);
      /** @type {ReturnType<typeof setTimeout> | undefined} */
      let timer;
      const beat = new Promise((resolve) => (timer = setTimeout(() => resolve(false), END_HEARTBEAT_MS)));
      const done = await Promise.race([settled, beat]);
      clearTimeout(timer);
      if (done) return work;
    }
  }

  /** Type instead of speaking; the reply is asked for once no response runs. */
  sendText(text) {
    const segment = this.segment;
    text = text.trim();
    if (!segment || segment.lost || this.state !== 'connected' || !text) return false;
    const id = `item_${randomHex(12)}`;
    segment.tracker.typed(text, id);
    segment.call.send({ type: 'conversation.item.create', item: { id, type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
    this.pendingCreate = true;
    this.#askPending(segment);
    return true;
  }

  /**
   * A typed message's response.create, once no response runs and every tool output is sent:
   * asked for earlier, Realtime refuses the relay's own (conversation_already_has_active_response)
   * or answers without the tool's result. The relay's response.create serves for both.
   * @param {Segment} segment
   */
  #askPending(segment) {
    if (!this.pendingCreate || segment !== this.segment || segment.lost || segment.tracker.activeResponses || segment.relay.busy) return;
    this.pendingCreate = false;
    segment.call.send({ type: 'response.create' });
  }

  /**
   * Realtime could not answer (an error event, a failed response): the person would hear only
   * silence, so the page says so, in its own words. The next answer takes the notice away; a
   * response the person interrupted (cancelled) is no problem.
   * @param {RealtimeEvent} event
   */
  #answered(event) {
    const status = event.type === 'response.done' ? event.response?.status : undefined;
    // Lost to a response already running (VAD fired as the page asked): that one answers.
    const raced = event.error?.code === 'conversation_already_has_active_response';
    if ((event.type === 'error' && !raced) || status === 'failed') {
      const code = (event.type === 'error' ? event.error?.code : event.response?.status_details?.error?.code) ?? 'response_failed';
      this.#problem({ code: String(code), message: ANSWER_PROBLEM });
    } else if (status === 'completed' && this.problem?.message === ANSWER_PROBLEM) {
      this.#clearProblem();
    }
  }

  /** Show a problem, or take it away (null). @param {{code: string, message: string} | null} problem */
  #problem(problem) {
    this.#emit('problem', (this.problem = problem));
  }

  /** Take away the problem shown, if there is one. */
  #clearProblem() {
    if (this.problem) this.#problem(null);
  }

  /**
   * Hang up and end the session: /end once every pending turn has settled. Again: same promise.
   * @param {{save: boolean, feedback?: string}} options
   */
  end(options) {
    if (this.state === 'end_failed' && this.unended) return (this.ending = this.#endAgain(this.unended, options));
    return (this.ending ??= this.#finish(options));
  }

  /**
   * The End again, of a session whose last End never reached the gateway, with the choice the
   * person makes now. @param {PendingEnd} unended @param {{save: boolean, feedback?: string}} options
   */
  #endAgain(unended, options) {
    this.unended = null;
    const ended = { ...unended, end: options };
    keepPendingEnd(this.storage, ended, this.tab);
    this.#clearProblem();
    this.#state('ending');
    return this.#endSession(ended, []);
  }

  async #finish(options) {
    // After "disconnected" the End is still the person's: keep, or not, what was said. Without
    // it the lost session (ended as continued) would be saved once its token ran out.
    const segment = this.segment ?? (this.state === 'disconnected' ? this.dropped : null);
    const reply = segment?.reply;
    /** @type {PendingEnd | null} */
    const ended = reply && {
      session_id: reply.session_id, token: reply.token, token_expires_at: reply.token_expires_at, persistent: reply.memory_mode === 'persistent', end: options,
    };
    // Kept before any wait: a reload while the End waits (turns, network) sends this choice.
    if (ended) keepPendingEnd(this.storage, ended, this.tab);
    const continued = this.continued;
    Object.assign(this, { dropped: null, continued: [] });
    // The End answers whatever was shown: no call is left to answer again or to carry on.
    this.#clearProblem();
    this.#state('ending');
    await despite(() => {
      if (segment && !segment.lost) segment.tracker.closeAll('connection_interrupted');
      segment?.call.close();
    });
    await despite(() => this.#stopMic());
    this.segment = null;
    // What was said leaves the page's memory now: hanging up handed the last turns to the outbox,
    // and only a Connect after "disconnected" carries it on, never one after an End.
    this.closedTurns = [];
    if (!ended) return this.#state('ended');
    // Returned, not awaited: the end runs on with the session's id and token alone, so the call
    // and its turns are not held for the half hour a summary may be asked after.
    return this.#endSession(ended, continued);
  }

  /**
   * The person's /end of the conversation's last session, once its turns have settled, and its
   * finalization after. @param {PendingEnd} ended the session, and the person's choice (kept)
   * @param {Continued[]} continued the conversation's sessions ended as continued (dropped calls)
   */
  async #endSession(ended, continued) {
    const { session_id: id, token, end: options } = ended;
    this.sending.add(id);
    // This end decides for the sessions ended as continued (the gateway finalizes them with it),
    // so it waits until each continued end is done trying: sent before one got through, it
    // would find that session not yet deferred, and nothing would decide it. A continued end
    // that never got through (the network stayed away) left its session open and unended, for
    // the gateway to end an hour later as saved: that session gets the person's own end here,
    // with their choice (the gateway takes a deciding /end after a continued one too), before
    // this one. An End of a dropped session itself (reconnecting, "disconnected") is that end.
    // That end is kept as the person's own until answered: unanswered now, a Connect or a
    // reload sends it again. All the while, this tab is still at this End: another tab leaves it be.
    const tried = await this.#trying(id, (async () => {
      for (const earlier of continued) {
        if (!(await earlier.answered) && earlier.sessionId !== id) {
          const { sessionId, token: earlierToken, expiresAt, persistent } = earlier;
          keepPendingEnd(this.storage, { session_id: sessionId, token: earlierToken, token_expires_at: expiresAt, persistent, end: options }, this.tab);
          if (verdict(await this.#trying(sessionId, this.#endRetried(earlierToken, options, END_TRIES))) !== 'retry') this.#ended(sessionId);
        }
      }
      let settled = true;
      await despite(async () => (settled = await this.outbox.settled(id, SETTLE_MS)));
      // Turns still unsent now are refused once the session has ended: the person is told.
      const unsent = settled ? 0 : this.outbox.pending(id).filter((e) => e.persist).length;
      return { result: await this.#endRetried(token, options, END_TRIES), unsent };
    })());
    const { unsent } = tried;
    let { result } = tried;
    this.sending.delete(id);
    if (verdict(result) === 'retry') {
      // Never reached the gateway: the session is still open, and its End the person's to try
      // again. Their choice stays kept (from the press), for a reload (resume()) or a Connect.
      this.unended = ended;
      this.#state('end_failed');
      return this.#problem({ code: 'end_failed', message: END_PROBLEM });
    }
    this.#ended(id);
    this.#state('ended');
    // What the person chose goes with each reply (which does not say it), for the card's heading.
    const saved = options.save !== false;
    this.#emit('finalization', { ...(result.body ?? { status: 'failed', problem: result.message }), saved });
    if (unsent && saved) this.#problem({ code: 'turns_not_saved', message: unsavedTurns(unsent) });
    // 202: still finalizing; ask again, more slowly, for as long as the finalizer may take. Only
    // while the card is this conversation's: a Connect meanwhile starts another (a new epoch).
    const epoch = this.epoch;
    const since = Date.now();
    for (let tries = 1, wait; result.status === 202 && (wait = finalizationPollDelay(tries, Date.now() - since)) !== null; tries += 1) {
      await sleep(wait);
      if (epoch !== this.epoch) break;
      const next = await this.#attempt('finalization', () => this.api.finalization(token, id));
      if (epoch !== this.epoch) break;
      if (next.body) this.#emit('finalization', { ...(result = next).body, saved });
      else if (verdict(next) === 'drop') break; // the token expired, say: asking again cannot help
    }
  }

  /**
   * A gateway call that never throws, reported to the inspector: its status and body, or error.
   * @param {string} name @param {() => Promise<{status: number, body: any}>} request @param {any} [sent]
   * @returns {Promise<Attempt & {body?: any, message?: string}>}
   */
  async #attempt(name, request, sent) {
    try {
      const reply = await request();
      this.#emit('gateway', { call: name, request: sent, status: reply.status, reply: reply.body });
      return reply;
    } catch (error) {
      const { status, code, message, retryAfterMs } = asApiError(error);
      this.#emit('gateway', { call: name, request: sent, status, error: { code, message } });
      return { status, code, message, retryAfterMs };
    }
  }

  /** The live (or dropped) session's token, else the last one kept while still valid. */
  #token() {
    return (this.segment ?? this.dropped)?.reply.token ?? liveSession(this.storage)?.token;
  }

  /** Earlier turns of the thread (the page before `before`); quiet when unavailable. @param {string | null} [before] */
  async loadHistory(before = null) {
    const token = this.#token();
    const thread = this.setup?.thread_id ?? loadConversation(this.storage).thread_id;
    const { body } = token ? await this.#attempt('history', () => this.api.threadTurns(token, thread, before)) : {};
    if (Array.isArray(body?.turns)) this.#emit('history', { ...body, older: Boolean(before) });
  }

  /** Forget everything kept for this user (or thread), and the turns this browser still holds
   * to send; throws an ApiError. */
  async erase() {
    const token = this.#token();
    if (!token) throw new ApiError('token_missing', 'Connect once first, so the service knows whose memory to erase.', 0);
    const { body } = await this.api.erase(token);
    this.outbox.clear();
    // The erasure ended the owner's sessions: a dropped incognito one's token is of no more use.
    forgetTabSession();
    return body;
  }

  /** The page is going away: open turns go to the outbox for the next visit. */
  leave() {
    if (this.segment && !this.segment.lost) this.segment.tracker.closeAll('connection_interrupted');
    this.segment?.call.close();
  }

  /**
   * Mute or unmute the microphone. Muted, the call sends silence: nothing the room makes is
   * heard as the person speaking, which would cut the reply to a message they typed.
   * @param {boolean} muted
   */
  setMuted(muted) {
    this.muted = muted;
    for (const track of this.mic?.getAudioTracks() ?? []) track.enabled = !muted;
    this.#emit('muted', muted);
  }

  #stopMic() {
    this.meter?.stop();
    for (const track of this.mic?.getTracks() ?? []) track.stop();
    Object.assign(this, { meter: null, mic: null });
    this.#emit('level', 0);
  }
}
