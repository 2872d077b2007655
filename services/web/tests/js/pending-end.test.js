// The person's End is kept until the gateway has answered it: an End that never got through
// (end_failed), then a Connect whose retry of it failed too (the network still away), must still
// be sent, as the person chose, by the next Connect or a reload. Forgotten, the session is left
// to the gateway's sweep, which ends it as saved, over "End without saving".
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import { toApiError } from '../../src/opencouch/web/static/js/api.js';
import { PENDING_ENDS_KEY, TAB_PENDING_ENDS_KEY, loadConversation, pendingEnds } from '../../src/opencouch/web/static/js/conversation-store.js';
import { MemoryStorage, conversation, hurry, pause, peers, sayTurn, setup, until, useFakes } from './fake-realtime.js';

useFakes();

/** Tries of the person's /end, then of a Connect's retire of it (conversation.js). */
const END_TRIES = 4;
const RETIRE_TRIES = 6;

/**
 * A conversation whose End without saving never reached the gateway, then a Connect whose
 * session starts while its retry of that End fails too. Returns the gateway back online.
 * @param {MemoryStorage} storage @param {any} connectSetup
 */
async function endLostTwice(storage, connectSetup) {
  const { api, talk, states } = conversation(storage);
  hurry(100);
  await talk.connect(connectSetup);
  const end = api.end;
  let tries = 0;
  api.end = async () => {
    tries += 1;
    throw toApiError(503, null);
  };
  await talk.end({ save: false });
  assert.equal(talk.state, 'end_failed');
  await talk.connect(connectSetup); // a new session, vs_2: the conversation's `last` now
  assert.equal(talk.state, 'connected');
  await until(() => tries === END_TRIES + RETIRE_TRIES);
  await pause(20);
  api.end = end;
  return { api, talk, states };
}

test('an End lost twice (end_failed, then its retry at Connect) is sent as chosen by a reload', async () => {
  const storage = new MemoryStorage();
  const before = await endLostTwice(storage, setup);
  assert.equal(loadConversation(storage).last?.session_id, 'vs_2');
  assert.deepEqual(before.api.decided, {}, 'nothing decided yet');
  assert.deepEqual(pendingEnds(storage).map((e) => [e.session_id, e.end]), [['vs_1', { save: false }]], 'still kept');

  const { api, talk } = conversation(storage); // the page is reloaded, the network back
  await talk.resume();
  assert.deepEqual(api.decided.vs_1, { save: false });
  assert.deepEqual(api.ends, [{ session: 'vs_1', body: { save: false } }], 'the session in use elsewhere is left alone');
  assert.deepEqual(pendingEnds(storage), []);
  assert.equal(storage.getItem(PENDING_ENDS_KEY), null, 'an answered End is kept no more (nor its token)');
  assert.equal(loadConversation(storage).last?.session_id, 'vs_2');
});

test('an End lost twice is sent as chosen by the next Connect', async () => {
  const storage = new MemoryStorage();
  const { api, talk } = await endLostTwice(storage, setup);
  await talk.end({ save: true }); // vs_2, while the gateway is back
  await talk.connect(setup);
  await until(() => api.decided.vs_1 !== undefined);
  assert.deepEqual(api.decided.vs_1, { save: false });
  assert.deepEqual(api.decided.vs_2, { save: true });
  await until(() => storage.getItem(PENDING_ENDS_KEY) === null);
});

test('a Connect that cannot start keeps the End it could not send either', async () => {
  const storage = new MemoryStorage();
  const { api, talk } = conversation(storage);
  hurry(100);
  await talk.connect(setup);
  const { end, createSession } = api;
  let tries = 0;
  const away = async () => {
    tries += 1;
    throw toApiError(503, null);
  };
  Object.assign(api, { end: away, createSession: away });
  await talk.end({ save: false, feedback: 'negative' });
  await talk.connect(setup); // still offline: no session either
  assert.equal(talk.state, 'idle');
  await until(() => tries === END_TRIES + 1 + RETIRE_TRIES);
  await pause(20);
  assert.deepEqual(pendingEnds(storage).map((e) => e.session_id), ['vs_1']);
  Object.assign(api, { end, createSession }); // back online
  await talk.connect(setup);
  await until(() => api.decided.vs_1 !== undefined);
  assert.deepEqual(api.decided.vs_1, { save: false, feedback: 'negative' });
});

test('an incognito End lost twice is kept in this tab only, and a reload of the tab sends it', async () => {
  const storage = new MemoryStorage();
  const tab = new MemoryStorage();
  globalThis.sessionStorage = /** @type {any} */ (tab);
  try {
    const incognito = { ...setup, memory_mode: 'incognito' };
    await endLostTwice(storage, incognito);
    assert.doesNotMatch(JSON.stringify([...storage.map.values()]), /token-vs_1/, 'never in localStorage');
    assert.match(tab.getItem(TAB_PENDING_ENDS_KEY) ?? '', /token-vs_1/);

    const { api, talk } = conversation(storage); // the tab is reloaded, the network back
    await talk.resume();
    assert.deepEqual(api.decided.vs_1, { save: false });
    assert.equal(tab.getItem(TAB_PENDING_ENDS_KEY), null);
    assert.doesNotMatch(JSON.stringify([...storage.map.values(), ...tab.map.values()]), /token-vs_1/);
  } finally {
    // @ts-ignore: node has no sessionStorage of its own
    delete globalThis.sessionStorage;
  }
});

test('an End the gateway refuses for good is kept no more; one still unanswered stays', async () => {
  const storage = new MemoryStorage();
  await endLostTwice(storage, setup);
  const { api, talk } = conversation(storage);
  hurry(100);
  api.end = async () => {
    throw toApiError(503, null);
  };
  await talk.resume(); // still away: kept
  assert.deepEqual(pendingEnds(storage).map((e) => e.session_id), ['vs_1']);
  api.end = async () => {
    throw toApiError(404, null);
  };
  await talk.resume(); // the session is gone: nothing left to send
  assert.deepEqual(pendingEnds(storage), []);
});

/**
 * Tabs of one browser: one localStorage, a sessionStorage each. A page takes its tab's id when it
 * is made, so `inTab(tab, …)` makes it with that tab's sessionStorage.
 * @template T @param {MemoryStorage} tab @param {() => T} make @returns {T}
 */
function inTab(tab, make) {
  globalThis.sessionStorage = /** @type {any} */ (tab);
  return make();
}

afterEach(() => {
  // @ts-ignore: node has no sessionStorage of its own
  delete globalThis.sessionStorage;
});

test("another tab's Connect leaves this tab's End to it: the End goes once, after the tab's last turn", async () => {
  const storage = new MemoryStorage();
  const a = inTab(new MemoryStorage(), () => conversation(storage));
  const b = inTab(new MemoryStorage(), () => conversation(storage)); // open, idle
  const log = [];
  const refused = new Set();
  a.api.turn = async (token) => {
    await pause(300); // the network is slow for this turn
    const session = token.replace('token-', '');
    log.push(`turn ${session} ${refused.has(session) ? 'refused' : 'stored'}`);
    return refused.has(session) ? { status: 409, body: { code: 'session_ended' } } : { status: 200, body: { recorded: true } };
  };
  for (const [tab, { api }] of /** @type {const} */ ([['A', a], ['B', b]])) {
    const end = api.end;
    api.end = async (token, body) => {
      const session = token.replace('token-', '');
      log.push(`${tab} ends ${session}`);
      if (!body.continued) refused.add(session);
      return end(token, body);
    };
  }
  await a.talk.connect(setup);
  sayTurn(peers.at(-1), 1, 'I had a hard day.');
  const ending = a.talk.end({ save: false }); // waits for turn 1
  await pause(50);
  await b.talk.connect(setup); // tab B: sends the Ends left to send, but not tab A's
  await ending;
  await pause(50);
  assert.deepEqual(log, ['turn vs_1 stored', 'A ends vs_1'], "tab A's End, once, after its turn");
  assert.deepEqual(a.api.decided, { vs_1: { save: false } });
  assert.equal(a.talk.state, 'ended');
  assert.equal(storage.getItem(PENDING_ENDS_KEY), null);
});

test("another tab leaves an End to the tab still trying it; a reload of that tab sends it at once", async () => {
  const storage = new MemoryStorage();
  const tabA = new MemoryStorage();
  inTab(tabA, () => undefined);
  await endLostTwice(storage, setup); // tab A keeps vs_1's End, unanswered, tried just now

  const b = inTab(new MemoryStorage(), () => conversation(storage));
  await b.talk.resume(); // another tab: left to tab A
  assert.deepEqual(b.api.ends, []);
  assert.deepEqual(pendingEnds(storage).map((e) => e.session_id), ['vs_1']);

  const reload = inTab(tabA, () => conversation(storage)); // tab A reloaded: the same tab
  await reload.talk.resume();
  assert.deepEqual(reload.api.decided.vs_1, { save: false });
  assert.equal(storage.getItem(PENDING_ENDS_KEY), null);
});

test('an End its tab has not tried for a while is sent by another tab', async () => {
  const storage = new MemoryStorage();
  inTab(new MemoryStorage(), () => undefined); // tab A
  await endLostTwice(storage, setup);
  const kept = /** @type {any[]} */ (JSON.parse(storage.getItem(PENDING_ENDS_KEY) ?? '[]'));
  // Tab A was closed three minutes ago, still unanswered.
  storage.setItem(PENDING_ENDS_KEY, JSON.stringify(kept.map((e) => ({ ...e, tried_at: Date.now() - 3 * 60 * 1000 }))));
  const b = inTab(new MemoryStorage(), () => conversation(storage));
  await b.talk.resume();
  assert.deepEqual(b.api.decided, { vs_1: { save: false } });
  assert.equal(storage.getItem(PENDING_ENDS_KEY), null);
});

test('expired Ends leave storage, with their tokens, when a reload reads them', async () => {
  const storage = new MemoryStorage();
  const tab = new MemoryStorage();
  globalThis.sessionStorage = /** @type {any} */ (tab);
  const expired = (id, persistent) => ({
    session_id: id, token: `token-${id}`, token_expires_at: Date.now() / 1000 - 60, persistent, end: { save: false },
  });
  storage.setItem(PENDING_ENDS_KEY, JSON.stringify([expired('vs_8', true)]));
  tab.setItem(TAB_PENDING_ENDS_KEY, JSON.stringify([expired('vs_9', false)]));
  const { api, talk } = conversation(storage);
  await talk.resume(); // nothing to send
  assert.deepEqual(api.ends, []);
  assert.equal(storage.getItem(PENDING_ENDS_KEY), null, 'an expired End is kept no more (nor its token)');
  assert.equal(tab.getItem(TAB_PENDING_ENDS_KEY), null);
});
