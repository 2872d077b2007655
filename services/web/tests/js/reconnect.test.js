// A call that drops mid-conversation: the page carries on in a new session of the same thread
// and ends the old one as `continued`, so only the person's own End decides whether anything of
// the conversation is kept. The conversation runs against a fake gateway and a fake WebRTC.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';

import { CONTINUED_END, VoiceConversation } from '../../src/opencouch/web/static/js/conversation.js';

const realSetTimeout = globalThis.setTimeout;
/** @type {FakePeer[]} */
let peers = [];

class FakeChannel {
  readyState = 'connecting';
  onopen = () => {};
  onclose = () => {};
  onmessage = () => {};
  send() {}
  close() {
    this.readyState = 'closed';
  }
}

class FakePeer {
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
}

class FakeGateway {
  sessions = 0;
  /** @type {Array<{session: string, body: any}>} */
  ends = [];
  createSession = async () => {
    this.sessions += 1;
    const id = `vs_${this.sessions}`;
    const reply = {
      session_id: id, thread_id: 'thread-1', memory_mode: 'persistent', token: `token-${id}`,
      token_expires_at: Date.now() / 1000 + 3600, realtime_calls_url: 'https://realtime.test/v1/realtime/calls',
      client_secret: { value: 'ek_test' },
    };
    return { status: 200, body: reply };
  };
  end = async (token, body) => {
    this.ends.push({ session: token.replace('token-', ''), body });
    const detail = body.continued ? 'pending' : 'completed';
    return { status: body.continued ? 202 : 200, body: { status: detail, finalized: !body.continued } };
  };
  threadTurns = async () => ({ status: 200, body: { turns: [] } });
  turn = async () => ({ status: 200, body: { recorded: true } });
  tool = async () => ({ status: 200, body: { ok: true, output: {} } });
  finalization = async () => ({ status: 200, body: {} });
  erase = async () => ({ status: 200, body: {} });
}

const track = { stop() {} };
const microphone = { getTracks: () => [track], getAudioTracks: () => [track] };

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

/** Resolves once `ready()` holds, checking every few milliseconds (fails after 5 s). */
async function until(ready) {
  for (let waited = 0; !ready(); waited += 10) {
    if (waited > 5000) throw new Error('timed out');
    await new Promise((resolve) => realSetTimeout(resolve, 10));
  }
}

function conversation() {
  const api = new FakeGateway();
  const talk = new VoiceConversation(/** @type {any} */ (api), null, /** @type {any} */ ({}));
  const states = [];
  talk.addEventListener('state', (event) => states.push(/** @type {CustomEvent} */ (event).detail.state));
  return { api, talk, states };
}

const setup = { thread_id: 'thread-1', user_id: '', memory_mode: 'persistent', assistant_voice: 'cedar' };

test('a dropped call is ended as continued, and the last End decides for the whole conversation', async () => {
  const { api, talk, states } = conversation();
  await talk.connect(setup);
  assert.equal(talk.state, 'connected');

  peers[0].fail();
  await until(() => api.sessions === 2 && talk.state === 'connected');
  assert.deepEqual(states.slice(-2), ['reconnecting', 'connected']);
  // The old session is closed without deciding anything: no save, no feedback.
  assert.deepEqual(api.ends, [{ session: 'vs_1', body: CONTINUED_END }]);
  assert.deepEqual(CONTINUED_END, { continued: true });

  await talk.end({ save: false });
  assert.deepEqual(api.ends.map((e) => [e.session, e.body]), [['vs_1', { continued: true }], ['vs_2', { save: false }]]);
});

test('an End while the reconnect is on its way comes after the dropped session was continued', async () => {
  const { api, talk } = conversation();
  await talk.connect(setup);
  peers[0].fail();
  // The person ends the conversation before the new session is there.
  await talk.end({ save: false });
  assert.deepEqual(api.ends.map((e) => [e.session, e.body]), [['vs_1', { continued: true }], ['vs_1', { save: false }]]);
  assert.equal(talk.state, 'ended');
});

test('a step of hanging up that throws is reported, and the session is still ended once', async () => {
  const { api, talk, states } = conversation();
  const reported = [];
  const realReport = globalThis.reportError;
  globalThis.reportError = (error) => reported.push(error.message);
  try {
    await talk.connect(setup);
    // Any bug before /end (here: waiting for the turns) used to leave the page "ending" for good.
    talk.outbox.settled = async () => {
      throw new Error('the outbox broke');
    };
    await talk.end({ save: true });
  } finally {
    globalThis.reportError = realReport;
  }
  assert.deepEqual(reported, ['the outbox broke']);
  assert.deepEqual(api.ends, [{ session: 'vs_1', body: { save: true } }]);
  assert.equal(states.at(-1), 'ended');
});

test('a muted microphone sends nothing, before connecting, through a reconnect and after it', async () => {
  const { api, talk } = conversation();
  const track = { enabled: true, stop() {} };
  navigator.mediaDevices.getUserMedia = async () => ({ getTracks: () => [track], getAudioTracks: () => [track] });
  const shown = [];
  talk.addEventListener('muted', (event) => shown.push(/** @type {CustomEvent} */ (event).detail));

  talk.setMuted(true); // someone who would rather type mutes first
  await talk.connect(setup);
  assert.equal(track.enabled, false);
  peers[0].fail();
  await until(() => api.sessions === 2 && talk.state === 'connected');
  assert.equal(track.enabled, false, 'the new call carries the same muted microphone');
  talk.setMuted(false);
  assert.equal(track.enabled, true);
  assert.deepEqual(shown, [true, true, false]);
});
