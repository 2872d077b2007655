// A conversation's own rules: how long a finalization in progress is polled, which session a
// reload leaves to end, when a typed message's reply is asked for, what a barge-in does to a
// reply's tool calls and to its turn, what the person is told when Realtime cannot answer (and
// for how long), and what the page forgets once it has ended.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { toApiError } from '../../src/opencouch/web/static/js/api.js';
import { loadConversation, saveConversation } from '../../src/opencouch/web/static/js/conversation-store.js';
import { ANSWER_PROBLEM, FINALIZATION_POLL_MS, finalizationPollDelay } from '../../src/opencouch/web/static/js/conversation.js';
import { OUTBOX_KEY } from '../../src/opencouch/web/static/js/outbox.js';
import { toolStatus } from '../../src/opencouch/web/static/js/presenters.js';
import { MemoryStorage, conversation, hurry, pause, peers, sayTurn, setup, until, useFakes } from './fake-realtime.js';

useFakes();

const MINUTE = 60 * 1000;

test('a finalization in progress is polled, more slowly, for as long as the finalizer may wait', () => {
  assert.deepEqual([1, 2, 5, 10, 11, 500].map((tries) => finalizationPollDelay(tries, 0)), [1000, 2000, 5000, 10000, 10000, 10000]);
  // The finalizer waits up to 30 minutes for memory, with the status in progress meanwhile:
  // the card keeps asking until then (it used to stop after 40 polls, about 6 minutes).
  assert.equal(finalizationPollDelay(200, 30 * MINUTE), 10000);
  assert.equal(finalizationPollDelay(250, FINALIZATION_POLL_MS), null);
});

test('a reload ends the session it left, not the one the person started while turns were sent', async () => {
  const storage = new MemoryStorage();
  const expires = Date.now() / 1000 + 3600;
  saveConversation(storage, { ...setup, last: { session_id: 'vs_old', token: 'token-vs_old', token_expires_at: expires } });
  storage.setItem(OUTBOX_KEY, JSON.stringify([{ id: 'turn-old', sessionId: 'vs_old', token: 'token-vs_old', tokenExpiresAt: expires, body: {}, tries: 0 }]));
  globalThis.sessionStorage = /** @type {any} */ (new MemoryStorage());
  sessionStorage.setItem('opencouch.tab-session', 'vs_old');
  try {
    const { api, talk } = conversation(storage);
    /** @type {(() => void) | undefined} */
    let deliver;
    api.turn = () => new Promise((resolve) => (deliver = () => resolve({ status: 200, body: { recorded: true } })));
    const exchange = globalThis.fetch;
    /** @type {(() => void) | undefined} */
    let answer;
    globalThis.fetch = /** @type {any} */ ((...args) => new Promise((resolve) => (answer = () => resolve(exchange(...args)))));
    const resumed = talk.resume(); // the page loads: the earlier visit's turn goes first
    await until(() => deliver !== undefined);
    const connected = talk.connect(setup); // the person presses Connect meanwhile
    await until(() => answer !== undefined); // their session is made, its call on the way
    /** @type {() => void} */ (deliver)();
    await resumed;
    /** @type {() => void} */ (answer)();
    await connected;
    assert.deepEqual(api.ends, [{ session: 'vs_old', body: { save: true } }]);
    assert.equal(talk.state, 'connected');
  } finally {
    // @ts-ignore: node has no sessionStorage of its own
    delete globalThis.sessionStorage;
  }
});

test('a reload ends the session it left even when the gateway cannot answer the first try', async () => {
  const storage = new MemoryStorage();
  const expires = Date.now() / 1000 + 3600;
  saveConversation(storage, { ...setup, last: { session_id: 'vs_old', token: 'token-vs_old', token_expires_at: expires } });
  globalThis.sessionStorage = /** @type {any} */ (new MemoryStorage());
  sessionStorage.setItem('opencouch.tab-session', 'vs_old');
  try {
    const { api, talk } = conversation(storage);
    hurry(50);
    const end = api.end;
    const tried = [];
    api.end = async (token, body) => {
      tried.push(body);
      if (tried.length === 1) throw toApiError(503, null);
      return end(token, body);
    };
    await talk.resume();
    assert.equal(tried.length, 2);
    assert.deepEqual(api.ends, [{ session: 'vs_old', body: { save: true } }]);
    assert.equal(loadConversation(storage).last?.ended, true);
  } finally {
    // @ts-ignore: node has no sessionStorage of its own
    delete globalThis.sessionStorage;
  }
});

/** A spoken request whose reply calls `tool`, done: the tool runs until `finish()`. */
async function toolRunning(tool = 'lookup_crisis_resources') {
  const { api, talk, problems } = conversation();
  /** @type {(() => void) | undefined} */
  let finish;
  api.tool = () => new Promise((resolve) => (finish = () => resolve({ status: 200, body: { ok: true, output: { status: 'ok' } } })));
  await talk.connect(setup);
  const peer = peers[0];
  peer.receive({ type: 'input_audio_buffer.speech_started', item_id: 'u1' });
  peer.receive({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'u1', transcript: 'Find me a helpline.' });
  peer.receive({ type: 'response.created', response: { id: 'r1' } });
  peer.receive({ type: 'response.done', response: { id: 'r1', status: 'completed', output: [{ type: 'function_call', call_id: 'c1', name: tool, arguments: '{}' }] } });
  await until(() => finish !== undefined);
  return { api, talk, peer, problems, finish: /** @type {() => void} */ (finish) };
}

const kinds = (peer) => peer.channel.sent.map((e) => (e.type === 'conversation.item.create' ? e.item.type : e.type));

test('a message typed while a tool runs waits for its output: one response.create answers both', async () => {
  const { talk, peer, problems, finish } = await toolRunning();
  assert.equal(talk.sendText('Are you still there?'), true);
  assert.deepEqual(kinds(peer), ['message'], 'no reply is asked for before the tool output is in');
  finish();
  await until(() => kinds(peer).length === 3);
  await pause(20);
  assert.deepEqual(kinds(peer), ['message', 'function_call_output', 'response.create']);
  assert.deepEqual(problems, []);
});

test('a message typed while wait_for_user runs is still answered, once its output is in', async () => {
  const { talk, peer, finish } = await toolRunning('wait_for_user');
  talk.sendText('Actually, one more thing.');
  finish();
  await until(() => kinds(peer).length === 3);
  await pause(20);
  assert.deepEqual(kinds(peer), ['message', 'function_call_output', 'response.create']);
});

test('a message typed while a reply with a tool call still runs gets no second response.create', async () => {
  const { talk } = conversation();
  await talk.connect(setup);
  const peer = peers[0];
  peer.receive({ type: 'response.created', response: { id: 'r1' } });
  talk.sendText('Hello?');
  peer.receive({ type: 'response.function_call_arguments.done', response_id: 'r1', call_id: 'c1', name: 'show_memory_status', arguments: '{}' });
  peer.receive({ type: 'response.done', response: { id: 'r1', status: 'completed', output: [] } });
  await until(() => kinds(peer).includes('function_call_output'));
  await pause(20);
  assert.deepEqual(kinds(peer), ['message', 'function_call_output', 'response.create']);
});

test('a tool call of a reply the person cut off never runs: the model hears it did not, and nothing is asked of it', async () => {
  const { api, talk } = conversation();
  const tools = [];
  const turns = [];
  const shown = [];
  api.tool = async (_token, body) => (tools.push(body.tool_name), { status: 200, body: { ok: true, output: { deleted: 3 } } });
  api.turn = async (_token, body) => (turns.push(body), { status: 200, body: { recorded: true } });
  talk.addEventListener('tool', (event) => shown.push({ .../** @type {CustomEvent} */ (event).detail }));
  await talk.connect(setup);
  const peer = peers[0];
  peer.receive({ type: 'input_audio_buffer.speech_started', item_id: 'u1' });
  peer.receive({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'u1', transcript: 'Yes, delete it.' });
  peer.receive({ type: 'response.created', response: { id: 'r1' } });
  // The arguments' .done comes for a response about to be cut off too.
  peer.receive({ type: 'response.function_call_arguments.done', response_id: 'r1', item_id: 'fc1', output_index: 0, call_id: 'c1', name: 'confirm_memory_deletion', arguments: '{}' });
  // "No wait, don't!": VAD cuts r1 off.
  peer.receive({ type: 'input_audio_buffer.speech_started', item_id: 'u2' });
  peer.receive({ type: 'response.done', response: { id: 'r1', status: 'cancelled', status_details: { type: 'cancelled', reason: 'turn_detected' },
    output: [{ type: 'function_call', status: 'incomplete', call_id: 'c1', name: 'confirm_memory_deletion', arguments: '{}' }] } });
  await pause(50);
  assert.deepEqual(tools, [], 'the deletion went through');
  assert.deepEqual(kinds(peer), ['function_call_output'], 'only the output saying it did not run');
  const output = JSON.parse(peer.channel.sent[0].item.output);
  assert.deepEqual([peer.channel.sent[0].item.call_id, output.status, output.error.code], ['c1', 'error', 'interrupted']);
  assert.deepEqual(shown.map((c) => [c.status, toolStatus(c)]), [['skipped', 'Not run']]);
  // Its turn is done: recorded now, the call as one that failed to run.
  await until(() => turns.length === 1);
  assert.deepEqual([turns[0].user_text, turns[0].outcome], ['Yes, delete it.', 'completed']);
  assert.deepEqual(turns[0].tool_calls.map((c) => [c.tool_name, c.status, c.error]), [['confirm_memory_deletion', 'failed', 'interrupted']]);
});

test('a turn whose tool was still running when the person spoke again is recorded once the tool is done, not at End', async () => {
  const { api, talk, peer, finish } = await toolRunning('show_memory_status');
  const turns = [];
  const shown = [];
  api.turn = async (_token, body) => (turns.push(body), { status: 200, body: { recorded: true } });
  talk.addEventListener('turn', (event) => shown.push({ .../** @type {CustomEvent} */ (event).detail }));
  // Before the tool answers, the person speaks again, and VAD answers them (r2).
  peer.receive({ type: 'input_audio_buffer.speech_started', item_id: 'u2' });
  peer.receive({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'u2', transcript: 'Hello?' });
  peer.receive({ type: 'response.created', response: { id: 'r2' } });
  finish();
  await until(() => kinds(peer).includes('response.create'));
  // Realtime refuses the relay's response.create: r2 is active. Every reply now goes to the newest turn.
  peer.receive({ type: 'error', error: { type: 'invalid_request_error', code: 'conversation_already_has_active_response' } });
  peer.receive({ type: 'response.output_item.added', response_id: 'r2', item: { id: 'a2', type: 'message' } });
  peer.receive({ type: 'response.output_audio_transcript.done', response_id: 'r2', item_id: 'a2', transcript: 'Memory is on.' });
  peer.receive({ type: 'response.done', response: { id: 'r2', status: 'completed', output: [] } });
  await until(() => turns.length === 2);
  assert.deepEqual(turns.map((t) => [t.user_text, t.outcome]), [['Find me a helpline.', 'completed'], ['Hello?', 'completed']]);
  assert.deepEqual(turns[0].tool_calls.map((c) => [c.tool_name, c.status]), [['show_memory_status', 'completed']]);
  const first = shown.filter((t) => t.userText === 'Find me a helpline.').at(-1);
  assert.equal(first.closed, true, 'still shown as busy');
  await talk.end({ save: true });
  assert.equal(turns.length, 2, 'nothing was left for End to close');
});

test('an answer Realtime could not give is said on the page in plain words; an interruption is not', async () => {
  const { talk, problems } = conversation();
  await talk.connect(setup);
  const peer = peers[0];
  sayTurn(peer, 1, 'Tell me about my week.');
  peer.receive({ type: 'error', error: { type: 'server_error', code: 'server_error', message: 'Failed on: Tell me about my week.' } });
  peer.receive({ type: 'response.done', response: { id: 'r2', status: 'failed', status_details: { type: 'failed', error: { type: 'server_error', code: 'internal_error' } } } });
  peer.receive({ type: 'response.done', response: { id: 'r3', status: 'cancelled', status_details: { type: 'cancelled', reason: 'turn_detected' } } });
  // A response.create that lost a race to the server's own response: that one answers.
  peer.receive({ type: 'error', error: { type: 'invalid_request_error', code: 'conversation_already_has_active_response' } });
  const said = "The assistant couldn't answer. Please say that again.";
  assert.deepEqual(problems, [{ code: 'server_error', message: said }, { code: 'internal_error', message: said }]);

  sayTurn(peer, 4, 'Can you hear me now?'); // answered: the notice goes
  assert.deepEqual(problems.slice(2), [null]);
  assert.equal(talk.state, 'connected');
});

test('an erasure also forgets the turns this browser still waits to send', async () => {
  const storage = new MemoryStorage();
  const expires = Date.now() / 1000 + 3600;
  saveConversation(storage, { ...setup, last: { session_id: 'vs_old', token: 'token-vs_old', token_expires_at: expires } });
  const waiting = { id: 'turn-old', sessionId: 'vs_old', token: 'token-vs_old', tokenExpiresAt: expires, body: { user_text: 'words' }, tries: 0 };
  storage.setItem(OUTBOX_KEY, JSON.stringify([waiting]));
  const { api, talk } = conversation(storage);
  const turns = [];
  api.turn = async (_token, body) => (turns.push(body), { status: 503, body: {} });
  await talk.erase();
  assert.equal(storage.getItem(OUTBOX_KEY), null);
  assert.deepEqual(talk.outbox.pending(), []);
  await talk.outbox.flush(true);
  assert.deepEqual(turns, []);
});

/** A gateway call while the gateway is away. */
const away = async () => {
  throw Object.assign(new Error('the gateway is away'), { status: 0 });
};

/** A full garbage collection, after the jobs that may still hold what a WeakRef points to. */
async function collect() {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc');
  await pause(0);
  gc();
  await pause(0);
}

test('what was said leaves the page once the person ends, after its last turn went to the outbox', async () => {
  const { api, talk } = conversation();
  hurry(20);
  const sent = [];
  api.turn = async (_token, body) => (sent.push(body.user_text), { status: 200, body: { recorded: true } });
  // The summary takes its time: the page asks after it for many minutes more.
  api.end = async () => ({ status: 202, body: { status: 'in_progress' } });
  api.finalization = async () => ({ status: 202, body: { status: 'in_progress' } });
  await talk.connect(setup);
  sayTurn(peers[0], 1, 'Something I only wanted to say once.');
  peers[0].receive({ type: 'input_audio_buffer.speech_started', item_id: 'u2' });
  peers[0].receive({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'u2', transcript: 'And one more thing.' });
  const said = new WeakRef(talk.closedTurns[0]);
  const ended = talk.end({ save: true });
  await until(() => talk.state === 'ended');
  assert.deepEqual(talk.closedTurns, []);
  // Nothing still needed is lost: the turn open at the End was handed over and delivered first.
  assert.deepEqual(sent, ['Something I only wanted to say once.', 'And one more thing.']);
  peers.length = 0; // the fake peer, which holds the closed call's handlers, is the test's own
  await collect();
  assert.equal(said.deref(), undefined, 'no turn is held while the summary is still asked after');
  api.finalization = async () => ({ status: 200, body: { status: 'completed' } });
  await ended;
});

test('a problem goes with the call it came from: a later call, and its End, never show it again', async () => {
  const { talk, problems } = conversation();
  await talk.connect(setup);
  const failed = { type: 'error', error: { type: 'server_error', code: 'server_error', message: 'Failed.' } };
  peers[0].receive(failed);
  assert.deepEqual(problems, [{ code: 'server_error', message: ANSWER_PROBLEM }]);
  peers[0].fail(); // the call that could not answer drops; the conversation carries on in another
  await until(() => peers.length === 2 && talk.state === 'connected');
  assert.deepEqual(problems.slice(1), [null], 'the lost call took its problem with it');
  await talk.end({ save: true });
  // The ended calls say nothing more: what a page shows (and focuses) at the End is of no call.
  peers[0].receive(failed);
  peers[1].receive(failed);
  assert.deepEqual(problems.slice(1), [null]);
});

test('Connect takes away the last attempt’s problem, and End the lost call’s "press Connect"', async () => {
  const { api, talk, problems } = conversation();
  hurry(20);
  const create = api.createSession;
  api.createSession = away;
  await talk.connect(setup);
  assert.equal(talk.state, 'idle');
  assert.equal(problems.length, 1);
  api.createSession = create;
  const shown = [];
  talk.addEventListener('state', () => shown.push(problems.at(-1)));
  await talk.connect(setup);
  assert.deepEqual(shown, [null, null], 'gone as the new call starts');

  api.createSession = away;
  peers[0].fail();
  await until(() => talk.state === 'disconnected');
  assert.equal(problems.at(-1)?.code, 'connection_lost');
  await talk.end({ save: true });
  assert.equal(talk.state, 'ended');
  assert.equal(problems.at(-1), null, 'nothing is left to carry on');
});

test('an incognito session’s token is kept in this tab only, for a reload to end it, and goes with the End', async () => {
  const storage = new MemoryStorage();
  const tab = new MemoryStorage();
  globalThis.sessionStorage = /** @type {any} */ (tab);
  const kept = (store) => JSON.stringify([...store.map.values()]);
  try {
    const incognito = { ...setup, memory_mode: 'incognito' };
    const before = conversation(storage);
    await before.talk.connect(incognito);
    assert.doesNotMatch(kept(storage), /token-vs_1/, 'never in localStorage');
    assert.match(kept(tab), /token-vs_1/);
    // The tab is reloaded mid-conversation: the page ends the session it left, as before.
    const { api, talk } = conversation(storage);
    api.sessions = 1;
    await talk.resume();
    assert.deepEqual(api.ends, [{ session: 'vs_1', body: { save: true } }]);
    assert.doesNotMatch(kept(tab), /token-vs_1/);

    await talk.connect(incognito);
    assert.match(kept(tab), /token-vs_2/);
    await talk.end({ save: true });
    assert.doesNotMatch(kept(storage) + kept(tab), /token/);
    // A persistent session's token stays in localStorage: its earlier turns show after a reload.
    await talk.connect(setup);
    assert.match(kept(storage), /token-vs_3/);
    assert.doesNotMatch(kept(tab), /token/);
  } finally {
    // @ts-ignore: node has no sessionStorage of its own
    delete globalThis.sessionStorage;
  }
});

test('an erasure forgets the incognito token this tab still kept for a dropped call', async () => {
  const storage = new MemoryStorage();
  const tab = new MemoryStorage();
  globalThis.sessionStorage = /** @type {any} */ (tab);
  const kept = () => JSON.stringify([...storage.map.values(), ...tab.map.values()]);
  try {
    const { api, talk } = conversation(storage);
    hurry(20);
    const erased = [];
    api.erase = async (token) => (erased.push(token), { status: 200, body: {} });
    await talk.connect({ ...setup, memory_mode: 'incognito' });
    // The gateway is away as the call drops: the lost session could not be ended yet.
    const { end } = api;
    Object.assign(api, { createSession: away, end: away });
    peers[0].fail();
    await until(() => talk.state === 'disconnected');
    await talk.erase(); // it is back: the erasure ends the owner's sessions
    assert.deepEqual(erased, ['token-vs_1']);
    assert.doesNotMatch(kept(), /token/);
    api.end = end; // and the lost session's end, still retried, gets through
  } finally {
    // @ts-ignore: node has no sessionStorage of its own
    delete globalThis.sessionStorage;
  }
});
