// A call that drops mid-conversation: the page carries on in a new session of the same thread
// and ends the old one as `continued`, so only the person's own End decides whether anything of
// the conversation is kept. The conversation runs against a fake gateway and a fake WebRTC.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ApiError, toApiError } from '../../src/opencouch/web/static/js/api.js';
import { loadConversation } from '../../src/opencouch/web/static/js/conversation-store.js';
import { CONTINUED_END } from '../../src/opencouch/web/static/js/conversation.js';
import { toolStatus } from '../../src/opencouch/web/static/js/presenters.js';
import { MemoryStorage, conversation, hurry, pause, peers, sayTurn, setup, until, useFakes } from './fake-realtime.js';

useFakes();

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

/**
 * The call drops, the first reconnect fails, the person ends and starts another conversation:
 * the old reconnect's next tries must touch nothing. `later` is what those tries would get.
 * @param {'sessions' | 'failures'} later
 */
async function endWhileReconnecting(later) {
  const { api, talk, states, problems } = conversation();
  hurry(20);
  await talk.connect(setup);
  const create = api.createSession;
  let through = 0; // sessions the gateway gives while it is away: the new conversation's
  let refused = 0;
  api.createSession = async (body) => {
    if (through > 0) {
      through -= 1;
      return create(body);
    }
    refused += 1;
    throw Object.assign(new Error('the gateway is away'), { status: 0 });
  };
  peers[0].fail();
  await until(() => refused === 1); // the first try failed; the next waits
  await talk.end({ save: true });
  if (later === 'sessions') api.createSession = create;
  else through = 1;
  const tracks = [{ stopped: false, stop() { this.stopped = true; } }];
  navigator.mediaDevices.getUserMedia = async () => ({ getTracks: () => tracks, getAudioTracks: () => tracks });
  await talk.connect({ ...setup, thread_id: 'thread-2' });
  const current = talk.segment;
  const started = api.sessions;

  await pause(500); // every wait of the old reconnect, hurried, is over
  assert.equal(api.sessions, started, 'no session is opened for the ended conversation');
  assert.equal(talk.segment, current);
  assert.equal(peers.at(-1).connectionState, 'new', 'the new call is not hung up');
  assert.equal(tracks[0].stopped, false, 'its microphone stays on');
  assert.equal(talk.state, 'connected');
  assert.deepEqual(states.slice(-3), ['ended', 'connecting', 'connected']);
  assert.deepEqual(problems, []);
}

test('a reconnect still trying when the person ends opens no session in their next conversation', () => endWhileReconnecting('sessions'));

test('a reconnect still trying when the person ends does not give up on their next conversation', () => endWhileReconnecting('failures'));

test('a session a reconnect got once the conversation was over is ended, never used', async () => {
  const storage = new MemoryStorage();
  const { api, talk } = conversation(storage);
  await talk.connect(setup);
  const create = api.createSession;
  /** @type {(() => void) | undefined} */
  let release;
  api.createSession = (body) => {
    api.createSession = create;
    return new Promise((resolve) => (release = () => resolve(create(body))));
  };
  peers[0].fail();
  await until(() => release !== undefined); // the reconnect's session is on its way
  await talk.end({ save: true });
  await talk.connect({ ...setup, thread_id: 'thread-2' });
  const current = talk.segment;
  assert.equal(current?.reply.session_id, 'vs_2');

  /** @type {() => void} */ (release)();
  await until(() => api.ends.some((e) => e.session === 'vs_3'));
  assert.deepEqual(api.ends.find((e) => e.session === 'vs_3')?.body, CONTINUED_END);
  assert.equal(talk.segment, current);
  assert.equal(peers.length, 2, 'no call is made for it');
  assert.equal(loadConversation(storage).last?.session_id, 'vs_2', 'the new conversation stays the one kept');
  assert.equal(talk.state, 'connected');
});

test('a new conversation starts with nothing said in the last one, in its tools, turns or reconnects', async () => {
  const { api, talk } = conversation();
  const tools = [];
  const turns = [];
  api.tool = async (_token, body) => (tools.push(body), { status: 200, body: { ok: true, output: {} } });
  api.turn = async (_token, body) => (turns.push(body), { status: 200, body: { recorded: true } });
  await talk.connect({ ...setup, memory_mode: 'incognito' });
  sayTurn(peers[0], 1, 'Something only the first conversation heard.');
  await talk.end({ save: false });

  await talk.connect({ ...setup, thread_id: 'thread-2', memory_mode: 'incognito' });
  const peer = peers[1];
  sayTurn(peer, 2, 'Hello again.');
  peer.receive({ type: 'input_audio_buffer.speech_started', item_id: 'u3' });
  peer.receive({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'u3', transcript: 'Look something up.' });
  peer.receive({ type: 'response.created', response: { id: 'r3' } });
  peer.receive({ type: 'response.function_call_arguments.done', response_id: 'r3', call_id: 'c1', name: 'show_memory_status', arguments: '{}' });
  peer.receive({ type: 'response.done', response: { id: 'r3', status: 'completed', output: [] } });
  await until(() => tools.length === 1);
  peer.fail();
  await until(() => peers.length === 3 && talk.state === 'connected');

  const said = (lines) => lines.map((l) => l.text);
  assert.deepEqual(said(tools[0].transcript), ['Hello again.', 'Reply 2.', 'Look something up.']);
  const second = turns.find((t) => t.user_text === 'Look something up.');
  assert.deepEqual(said(second.transcript), ['Hello again.', 'Reply 2.']);
  const context = peers[2].channel.sent.find((e) => e.item?.role === 'system').item.content[0].text;
  assert.match(context, /Hello again/);
  assert.doesNotMatch(context, /first conversation/);
  const later = turns.filter((t) => t.user_text !== 'Something only the first conversation heard.');
  assert.doesNotMatch(JSON.stringify([tools, later]), /first conversation/);
});

test('after "disconnected", Connect on the same thread carries on with what was said', async () => {
  const { api, talk, states } = conversation();
  hurry(20);
  const tools = [];
  api.tool = async (_token, body) => (tools.push(body), { status: 200, body: { ok: true, output: {} } });
  await talk.connect(setup);
  sayTurn(peers[0], 1, 'Before the line went down.');
  const create = api.createSession;
  api.createSession = async () => {
    throw Object.assign(new Error('the gateway is away'), { status: 0 });
  };
  peers[0].fail();
  await until(() => talk.state === 'disconnected');
  api.createSession = create;

  await talk.connect(setup);
  assert.deepEqual(states.slice(-2), ['connecting', 'connected']);
  peers[1].receive({ type: 'response.created', response: { id: 'r2' } });
  peers[1].receive({ type: 'response.function_call_arguments.done', response_id: 'r2', call_id: 'c1', name: 'show_memory_status', arguments: '{}' });
  peers[1].receive({ type: 'response.done', response: { id: 'r2', status: 'completed', output: [] } });
  await until(() => tools.length === 1);
  assert.deepEqual(tools[0].transcript.map((l) => l.text), ['Before the line went down.', 'Reply 1.']);
  // The model of the new session hears it too: the page said "press Connect to carry on".
  const context = peers[1].channel.sent.find((e) => e.item?.role === 'system')?.item.content[0].text;
  assert.match(context ?? '', /User: Before the line went down\.\nAssistant: Reply 1\./);
});

test('a tool output the dropped call could not take is not Done, and the new session hears it', async () => {
  const { api, talk } = conversation();
  /** @type {(() => void) | undefined} */
  let finish;
  api.tool = () => new Promise((resolve) => (finish = () => resolve({ status: 200, body: { ok: true, output: { status: 'found', resources: [{ name: 'Helpline' }] } } })));
  const shown = [];
  talk.addEventListener('tool', (event) => shown.push({ .../** @type {CustomEvent} */ (event).detail }));
  await talk.connect(setup);
  const peer = peers[0];
  peer.receive({ type: 'input_audio_buffer.speech_started', item_id: 'u1' });
  peer.receive({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'u1', transcript: 'I need someone to talk to.' });
  peer.receive({ type: 'response.created', response: { id: 'r1' } });
  peer.receive({ type: 'response.done', response: { id: 'r1', status: 'completed', output: [{ type: 'function_call', call_id: 'c1', name: 'lookup_crisis_resources', arguments: '{}' }] } });
  await until(() => finish !== undefined);
  peer.fail(); // the call drops while the lookup runs
  /** @type {() => void} */ (finish)();
  await until(() => peers.length === 2 && talk.state === 'connected');

  assert.equal(peer.channel.sent.some((e) => e.item?.type === 'function_call_output'), false);
  assert.deepEqual(shown.map((c) => [c.status, c.sent]), [['running', false], ['failed', false]]);
  assert.equal(toolStatus(shown[1]), 'Not delivered');
  const context = peers[1].channel.sent.find((e) => e.item?.role === 'system').item.content[0].text;
  assert.match(context, /lookup_crisis_resources call did not reach you/);
  assert.match(context, /Helpline/);
});

test('after "disconnected" the person can still end, and their choice decides the lost session', async () => {
  const { api, talk } = conversation();
  hurry(20);
  await talk.connect(setup);
  sayTurn(peers[0], 1, 'Please do not keep this.');
  api.createSession = async () => {
    throw Object.assign(new Error('the gateway is away'), { status: 0 });
  };
  peers[0].fail();
  await until(() => talk.state === 'disconnected');
  await talk.end({ save: false });
  assert.equal(talk.state, 'ended');
  // Continued when it dropped, then ended as the person chose: not saved by default later.
  assert.deepEqual(api.ends.map((e) => [e.session, e.body]), [['vs_1', { continued: true }], ['vs_1', { save: false }]]);
});

/** The network is gone: no reply at all. */
const offline = () => new ApiError('network_error', 'Could not reach the voice service.', 0);
/** The gateway is there but cannot end a session yet (NATS down, say). */
const unavailable = (retryAfterMs = null) => toApiError(503, null, retryAfterMs);

/**
 * The dropped call's session `session` cannot be ended as continued: each of its continued
 * /ends fails with the next of `failures` (as the API client throws), then the gateway answers
 * as usual. Returns the continued /ends tried, failed or not.
 * @param {import('./fake-realtime.js').FakeGateway} api @param {string} session @param {ApiError[]} failures
 */
function continuedEndFails(api, session, failures) {
  const end = api.end;
  const tried = [];
  api.end = async (token, body) => {
    if (token === `token-${session}` && body.continued) {
      tried.push(body);
      const failure = failures.shift();
      if (failure) throw failure;
    }
    return end(token, body);
  };
  return tried;
}

test('a dropped call whose continued end fails is ended as continued once the gateway answers, before the End', async () => {
  const { api, talk } = conversation();
  hurry(50);
  await talk.connect(setup);
  // The network that dropped the call loses the first try too; then the gateway is busy a while.
  const tried = continuedEndFails(api, 'vs_1', [offline(), unavailable(10000)]);
  peers[0].fail();
  await until(() => api.sessions === 2 && talk.state === 'connected');
  assert.deepEqual(api.ends, [], 'the dropped session is not ended yet: its end waits for Retry-After');

  // The person ends meanwhile, without saving: their End waits for the dropped session's end.
  await talk.end({ save: false });
  assert.equal(tried.length, 3);
  assert.deepEqual(api.ends.map((e) => [e.session, e.body]), [['vs_1', CONTINUED_END], ['vs_2', { save: false }]]);
  assert.deepEqual(api.decided, { vs_1: { save: false }, vs_2: { save: false } }, 'nothing of the conversation is kept');
  assert.equal(talk.state, 'ended');
});

test('a continued end that never gets through is tried a few times, then the End ends that session as the person chose', async () => {
  const { api, talk } = conversation();
  hurry(100);
  await talk.connect(setup);
  const tried = continuedEndFails(api, 'vs_1', Array.from({ length: 20 }, () => unavailable()));
  peers[0].fail();
  await until(() => api.sessions === 2 && talk.state === 'connected');

  const choice = { save: false, feedback: 'The line kept dropping.' };
  await talk.end(choice);
  assert.equal(tried.length, 6, 'a few tries, not forever');
  // The dropped session was never deferred: the End's choice goes to it in its own /end, first.
  assert.deepEqual(api.ends.map((e) => [e.session, e.body]), [['vs_1', choice], ['vs_2', choice]]);
  assert.deepEqual(api.decided, { vs_1: choice, vs_2: choice });
  assert.equal(talk.state, 'ended');
});

test('a continued end the gateway refuses for good (the session is gone) is neither retried nor ended again', async () => {
  const { api, talk } = conversation();
  hurry(50);
  await talk.connect(setup);
  const gone = toApiError(404, { error: { code: 'voice_session_not_found', message: 'This voice session is no longer known.' } });
  const tried = continuedEndFails(api, 'vs_1', [gone]);
  peers[0].fail();
  await until(() => api.sessions === 2 && talk.state === 'connected');
  await talk.end({ save: false });
  assert.equal(tried.length, 1);
  assert.deepEqual(api.ends.map((e) => [e.session, e.body]), [['vs_2', { save: false }]]);
});

test('after "disconnected" and Connect again, the End decides the lost session its continued end never reached', async () => {
  const { api, talk } = conversation();
  hurry(100);
  await talk.connect(setup);
  sayTurn(peers[0], 1, 'Please do not keep this.');
  const create = api.createSession;
  api.createSession = async () => {
    throw offline();
  };
  const tried = continuedEndFails(api, 'vs_1', Array.from({ length: 20 }, () => offline()));
  peers[0].fail();
  await until(() => talk.state === 'disconnected');
  api.createSession = create;
  await talk.connect(setup); // the same thread: the conversation carries on
  assert.equal(talk.state, 'connected');

  await talk.end({ save: false });
  assert.equal(tried.length, 6);
  assert.deepEqual(api.ends.map((e) => [e.session, e.body]), [['vs_1', { save: false }], ['vs_2', { save: false }]]);
  assert.deepEqual(api.decided, { vs_1: { save: false }, vs_2: { save: false } });
});

test('a lost session of another conversation is not ended with the next conversation\'s choice', async () => {
  const { api, talk } = conversation();
  hurry(100);
  await talk.connect(setup);
  const create = api.createSession;
  api.createSession = async () => {
    throw offline();
  };
  const tried = continuedEndFails(api, 'vs_1', Array.from({ length: 20 }, () => offline()));
  peers[0].fail();
  await until(() => talk.state === 'disconnected');
  api.createSession = create;
  await talk.connect({ ...setup, thread_id: 'thread-2' }); // a new conversation, not this one
  await talk.end({ save: false });
  await until(() => tried.length === 6); // the lost session's own tries, continued only
  await pause(100);
  assert.deepEqual(tried, Array(6).fill(CONTINUED_END));
  assert.deepEqual(api.ends.map((e) => [e.session, e.body]), [['vs_2', { save: false }]]);
  assert.equal(api.decided.vs_1, undefined);
});
