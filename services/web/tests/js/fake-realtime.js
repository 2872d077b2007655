// A fake gateway and a fake WebRTC, for tests that run a whole conversation in node. A test
// file calls useFakes() once; `peers` holds each call's peer connection, newest last.
import { afterEach, beforeEach } from 'node:test';

import { VoiceConversation } from '../../src/opencouch/web/static/js/conversation.js';

export const realSetTimeout = globalThis.setTimeout;
/** @type {FakePeer[]} */
export let peers = [];

export class FakeChannel {
  readyState = 'connecting';
  /** @type {any[]} the events the page sent */
  sent = [];
  onopen = () => {};
  onclose = () => {};
  /** @type {(message: {data: string}) => void} */
  onmessage = () => {};
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 'closed';
  }
}

export class FakePeer {
  connectionState = 'new';
  localDescription = { sdp: 'v=0' };
  onconnectionstatechange = () => {};
  constructor() {
    peers.push(this);
  }
  createDataChannel() {
    return (this.channel = new FakeChannel());
  }
  addTrack() {}
  async createOffer() {
    return { type: 'offer', sdp: 'v=0' };
  }
  async setLocalDescription() {}
  async setRemoteDescription() {
    this.channel.readyState = 'open';
    queueMicrotask(() => this.channel.onopen());
  }
  close() {
    this.connectionState = 'closed';
  }
  /** The network gives up on the call. */
  fail() {
    this.connectionState = 'failed';
    this.onconnectionstatechange();
  }
  /** A server event on the data channel. @param {RealtimeEvent} event */
  receive(event) {
    this.channel.onmessage({ data: JSON.stringify(event) });
  }
}

export class FakeGateway {
  sessions = 0;
  /** @type {Array<{session: string, body: any}>} */
  ends = [];
  createSession = async (body) => {
    this.sessions += 1;
    const id = `vs_${this.sessions}`;
    const reply = {
      session_id: id, thread_id: body.thread_id, memory_mode: body.memory_mode, token: `token-${id}`,
      token_expires_at: Date.now() / 1000 + 3600, realtime_calls_url: 'https://realtime.test/v1/realtime/calls',
      client_secret: { value: 'ek_test' },
    };
    return { status: 200, body: reply };
  };
  /**
   * What each session's finalization was decided with, as the gateway would: a deciding /end
   * (not continued) decides its own session and the ones ended as continued before it. A
   * session missing here is one the gateway would end itself, an hour later, as saved.
   * @type {Record<string, {save?: boolean, feedback?: string}>}
   */
  decided = {};
  /** @type {string[]} sessions ended as continued, waiting for the conversation's last /end */
  deferred = [];
  end = async (token, body) => {
    const session = token.replace('token-', '');
    this.ends.push({ session, body });
    if (body.continued) {
      if (!this.decided[session]) this.deferred.push(session);
    } else {
      for (const id of [...this.deferred, session]) this.decided[id] ??= body;
      this.deferred = [];
    }
    const detail = body.continued ? 'pending' : 'completed';
    return { status: body.continued ? 202 : 200, body: { status: detail, finalized: !body.continued } };
  };
  threadTurns = async () => ({ status: 200, body: { turns: [] } });
  turn = async () => ({ status: 200, body: { recorded: true } });
  tool = async () => ({ status: 200, body: { ok: true, output: {} } });
  finalization = async () => ({ status: 200, body: {} });
  erase = async () => ({ status: 200, body: {} });
}

/** localStorage or sessionStorage, in memory. */
export class MemoryStorage {
  constructor() { this.map = new Map(); }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

/** Timers run `factor` times sooner (the 20 s connect deadline, the reconnect's waits). */
export function hurry(factor) {
  globalThis.setTimeout = /** @type {any} */ ((fn, ms, ...args) => realSetTimeout(fn, (ms ?? 0) / factor, ...args));
}

const track = { stop() {} };
const microphone = { getTracks: () => [track], getAudioTracks: () => [track] };

/** Every test of the calling file gets new fakes: WebRTC, the microphone and the SDP exchange. */
export function useFakes() {
  beforeEach(() => {
    peers = [];
    // The call's 20 s open timeout must not keep the test process alive.
    globalThis.setTimeout = /** @type {any} */ ((fn, ms, ...args) => realSetTimeout(fn, ms, ...args).unref());
    globalThis.RTCPeerConnection = /** @type {any} */ (FakePeer);
    Object.defineProperty(globalThis, 'navigator', { value: { mediaDevices: { getUserMedia: async () => microphone } }, configurable: true });
    globalThis.fetch = /** @type {any} */ (async () => ({ ok: true, status: 201, headers: new Headers({ Location: '/v1/realtime/calls/rtc_1' }), text: async () => 'v=0' }));
  });

  afterEach(() => {
    globalThis.setTimeout = realSetTimeout;
  });
}

/** Resolves once `ready()` holds, checking every few milliseconds (fails after 5 s). */
export async function until(ready) {
  for (let waited = 0; !ready(); waited += 10) {
    if (waited > 5000) throw new Error('timed out');
    await new Promise((resolve) => realSetTimeout(resolve, 10));
  }
}

/** Waits `ms` of real time. */
export const pause = (ms) => new Promise((resolve) => realSetTimeout(resolve, ms));

/** A conversation on a fake gateway, with the states it went through and the problems it told. */
export function conversation(storage = null) {
  const api = new FakeGateway();
  const talk = new VoiceConversation(/** @type {any} */ (api), storage, /** @type {any} */ ({}));
  const states = [];
  const problems = [];
  talk.addEventListener('state', (event) => states.push(/** @type {CustomEvent} */ (event).detail.state));
  talk.addEventListener('problem', (event) => problems.push(/** @type {CustomEvent} */ (event).detail));
  return { api, talk, states, problems };
}

export const setup = { thread_id: 'thread-1', user_id: '', memory_mode: 'persistent', assistant_voice: 'cedar' };

/**
 * One spoken turn, heard and answered: `n` names its items and response.
 * @param {FakePeer} peer @param {number} n @param {string} said @param {string} reply
 */
export function sayTurn(peer, n, said, reply = `Reply ${n}.`) {
  peer.receive({ type: 'input_audio_buffer.speech_started', item_id: `u${n}` });
  peer.receive({ type: 'conversation.item.input_audio_transcription.completed', item_id: `u${n}`, transcript: said });
  peer.receive({ type: 'response.created', response: { id: `r${n}` } });
  peer.receive({ type: 'response.output_item.added', response_id: `r${n}`, item: { id: `a${n}`, type: 'message' } });
  peer.receive({ type: 'response.output_audio_transcript.done', response_id: `r${n}`, item_id: `a${n}`, transcript: reply });
  peer.receive({ type: 'response.done', response: { id: `r${n}`, status: 'completed', output: [] } });
}
