// The person's End is kept until the gateway has answered it: an End that never got through
// (end_failed), then a Connect whose retry of it failed too (the network still away), must still
// be sent, as the person chose, by the next Connect or a reload. Forgotten, the session is left
// to the gateway's sweep, which ends it as saved, over "End without saving".
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { toApiError } from '../../src/opencouch/web/static/js/api.js';
import { PENDING_ENDS_KEY, TAB_PENDING_ENDS_KEY, loadConversation, pendingEnds } from '../../src/opencouch/web/static/js/conversation-store.js';
import { MemoryStorage, conversation, hurry, pause, setup, until, useFakes } from './fake-realtime.js';

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
