// The turn outbox: kept until acknowledged, retried with the same id, across reloads.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { OUTBOX_KEY, Outbox, backoff, verdict } from '../../src/opencouch/web/static/js/outbox.js';

class MemoryStorage {
  constructor() { this.map = new Map(); }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

function outbox(storage, replies, clock = { now: 0 }) {
  const sent = [];
  const timers = [];
  const box = new Outbox({
    storage,
    now: () => clock.now,
    setTimer: (fn, ms) => timers.push({ fn, at: clock.now + ms }),
    send: async (entry) => {
      sent.push(entry.id);
      return replies.shift() ?? { status: 200 };
    },
  });
  const runTimers = async () => {
    for (const timer of timers.splice(0).filter((t) => t.at <= clock.now)) timer.fn();
    await box.flushing;
  };
  return { box, sent, runTimers, clock };
}
const entry = (id, persist = true) => ({ id, sessionId: 'vs_1', token: 'tok', tokenExpiresAt: 10 ** 10, body: { client_turn_id: id }, persist });

test('verdicts and backoff', () => {
  assert.equal(verdict({ status: 200 }), 'done');
  for (const status of [0, 429, 500, 503]) assert.equal(verdict({ status }), 'retry');
  for (const status of [401, 403, 404, 409, 422]) assert.equal(verdict({ status }), 'drop');
  assert.deepEqual([1, 2, 3, 9].map((n) => backoff(n)), [1000, 2000, 4000, 30000]);
  assert.equal(backoff(1, 2500), 2500);
});

test('a failed turn is retried with the same id until acknowledged, then forgotten', async () => {
  const storage = new MemoryStorage();
  const { box, sent, runTimers, clock } = outbox(storage, [{ status: 503, retryAfterMs: 2000 }, { status: 0 }]);
  await box.add(entry('turn-1'));
  assert.equal(JSON.parse(storage.getItem(OUTBOX_KEY))[0].id, 'turn-1');
  clock.now = 2000;
  await runTimers();
  clock.now = 10000;
  await runTimers();
  assert.deepEqual(sent, ['turn-1', 'turn-1', 'turn-1']);
  assert.equal(box.pending().length, 0);
  assert.equal(storage.getItem(OUTBOX_KEY), null);
});

test('after a reload the stored entry is sent with its own token, once', async () => {
  const storage = new MemoryStorage();
  const first = outbox(storage, [{ status: 0 }]);
  await first.box.add(entry('turn-7'));
  const reloaded = outbox(storage, []);
  assert.equal(reloaded.box.pending()[0].token, 'tok');
  await reloaded.box.flush();
  assert.deepEqual(reloaded.sent, ['turn-7']);
  assert.equal(storage.getItem(OUTBOX_KEY), null);
});

test('refused and expired entries are dropped; incognito entries never touch storage', async () => {
  const storage = new MemoryStorage();
  const { box, sent } = outbox(storage, [{ status: 409, code: 'session_ended' }]);
  await box.add(entry('turn-a'));
  await box.add({ ...entry('turn-b'), tokenExpiresAt: 0 });
  assert.deepEqual(sent, ['turn-a'], 'an expired token is not even tried');
  assert.equal(box.pending().length, 0);
  const { box: incognito } = outbox(storage, [{ status: 0 }]);
  await incognito.add(entry('turn-i', false));
  assert.equal(storage.getItem(OUTBOX_KEY), null);
  assert.equal(incognito.pending().length, 1);
});

test('settled resolves once the session has nothing pending, or false after its timeout', async () => {
  const { box, runTimers, clock } = outbox(new MemoryStorage(), [{ status: 503 }]);
  await box.add(entry('turn-1'));
  const settled = box.settled('vs_1', 60000);
  await box.flushing;
  assert.equal(box.pending('vs_1').length, 0);
  assert.equal(await settled, true);

  const stuck = outbox(new MemoryStorage(), [{ status: 503 }, { status: 503 }, { status: 503 }]);
  await stuck.box.add(entry('turn-2'));
  const waiting = stuck.box.settled('vs_1', 5000);
  await stuck.box.flushing;
  stuck.clock.now = 6000;
  await stuck.runTimers();
  assert.equal(await waiting, false);
  void runTimers;
  void clock;
});

test('two tabs do not erase each other\'s entries', async () => {
  const storage = new MemoryStorage();
  const a = outbox(storage, [{ status: 0 }]);
  const b = outbox(storage, [{ status: 0 }]);
  await a.box.add(entry('from-a'));
  await b.box.add(entry('from-b'));
  assert.deepEqual(JSON.parse(storage.getItem(OUTBOX_KEY)).map((e) => e.id).sort(), ['from-a', 'from-b']);
});

test('cleared after an erasure: no waiting turn is sent or kept, however it got there', async () => {
  const storage = new MemoryStorage();
  const earlier = outbox(storage, [{ status: 0 }]);
  await earlier.box.add(entry('turn-before-reload'));
  const { box, sent, runTimers, clock } = outbox(storage, [{ status: 503 }, { status: 503 }]);
  await box.add(entry('turn-mine'));
  // Another tab's, stored after this tab loaded.
  storage.setItem(OUTBOX_KEY, JSON.stringify([...JSON.parse(storage.getItem(OUTBOX_KEY)), { ...entry('turn-theirs'), tries: 0 }]));
  assert.equal(JSON.parse(storage.getItem(OUTBOX_KEY)).length, 3);
  box.clear();
  assert.equal(storage.getItem(OUTBOX_KEY), null);
  assert.deepEqual(box.pending(), []);
  clock.now = 60000;
  await runTimers();
  assert.deepEqual(sent, ['turn-before-reload', 'turn-mine']); // their tries before the erasure, none after
  assert.equal(await box.settled('vs_1', 10), true);
});
