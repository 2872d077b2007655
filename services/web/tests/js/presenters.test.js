// What the page shows: crisis cards, the finalization card, plain words, stored state, log.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { retryAfter, toApiError } from '../../src/opencouch/web/static/js/api.js';
import { keepThreadSecret, liveToken, loadConversation, threadSecret } from '../../src/opencouch/web/static/js/conversation-store.js';
import { EventLog, redacted } from '../../src/opencouch/web/static/js/event-log.js';
import { traceparent } from '../../src/opencouch/web/static/js/ids.js';
import { connectionLabel, controlsFor, crisisCards, finalizationCard, micProblem, regionName, safeUrl } from '../../src/opencouch/web/static/js/presenters.js';

const FOUND = {
  status: 'found',
  resources: [
    { name: '9-8-8 Suicide Crisis Helpline', region: 'Canada', phone: '9-8-8', url: 'https://988.ca' },
    { name: 'Bad link', region: 'X', url: 'javascript:alert(1)' },
  ],
};

test('crisis cards come only from lookup_crisis_resources, with safe links', () => {
  const cards = crisisCards('lookup_crisis_resources', FOUND);
  assert.equal(cards.length, 2);
  assert.equal(cards[0].phoneHref, 'tel:988');
  assert.equal(cards[0].url, 'https://988.ca/');
  assert.equal(cards[1].url, '');
  assert.deepEqual(crisisCards('get_crisis_support_template', FOUND), []);
  assert.deepEqual(crisisCards('lookup_crisis_resources', { status: 'lookup_error' }), []);
  assert.equal(safeUrl('data:text/html,hi'), '');
});

test('a resource\'s region is named, not coded', () => {
  assert.deepEqual(['CA', 'GB', 'INTL', 'Anywhere', '', 'XY'].map(regionName), ['Canada', 'United Kingdom', 'International', 'Anywhere', '', 'XY']);
});

test('finalization card states', () => {
  assert.equal(finalizationCard(null).status, 'idle');
  assert.equal(finalizationCard({ status: 'pending' }).status, 'in_progress');
  assert.equal(finalizationCard({ status: 'in_progress' }).label, 'Summarising…');
  assert.equal(finalizationCard({ status: null, detail: 'Incognito' }).status, 'not_kept');
  const done = finalizationCard({ status: 'completed', summary: 'We talked.', themes: ['work'], mood_opened: 'tense', mood_closed: 'calmer' });
  assert.deepEqual([done.status, done.summary, done.themes, done.moods], ['completed', 'We talked.', ['work'], 'tense → calmer']);
  assert.equal(finalizationCard({ status: 'failed' }).status, 'failed');
});

test('the finalization heading says what was kept, as the person chose', () => {
  const label = (reply) => finalizationCard(reply).label;
  assert.equal(label({ status: 'completed', summary: 'We talked.', saved: true }), 'Saved and summarised');
  assert.equal(label({ status: 'completed', summary: null, detail: 'Too short for a session summary.', saved: true }), 'Saved');
  assert.equal(label({ status: 'completed', summary: null, detail: 'Ended without saving.', saved: false }), 'Ended without saving');
  assert.equal(label({ status: 'in_progress', saved: false }), 'Ending without saving…');
  assert.equal(label({ status: 'in_progress', saved: true }), 'Summarising…');
  const erased = finalizationCard({ erased: true, detail: 'Everything kept for you was erased.' });
  assert.deepEqual([erased.status, erased.label, erased.summary], ['erased', 'Erased', '']);
});

test('the line under the heading is in the person\'s words, never the operators\' detail', () => {
  const note = (reply) => finalizationCard(reply).note;
  // What the finalizer and the gateway write for operators: it used to be shown as it was.
  const operator = 'Finalized 2 turns. Too short for a session summary: 2 user turns, and a summary needs 3 substantive user turns. The peak crisis level covers 1 of 2 turns; the others were not classified in time.';
  assert.equal(note({ status: 'completed', summary: null, detail: operator, saved: true }), 'What you said is saved. The conversation was too short to summarise.');
  assert.equal(note({ status: 'completed', summary: 'We talked.', detail: operator, saved: true }), '');
  // What was added to memory is said: someone who asked for something to be remembered sees it was.
  assert.equal(note({ status: 'completed', summary: 'We talked.', memories_committed: 1, saved: true }), 'One new thing to remember was kept for next time.');
  assert.equal(note({ status: 'completed', summary: null, memories_committed: 2, saved: true }), 'What you said is saved. The conversation was too short to summarise. 2 new things to remember were kept for next time.');
  assert.equal(note({ status: 'completed', summary: 'We talked.', memories_committed: 0, saved: true }), '');
  assert.equal(note({ status: 'completed', summary: null, memories_committed: 1, saved: false }), 'No summary and no new memories were kept.');
  assert.equal(note({ status: 'completed', summary: null, detail: operator, saved: false }), 'No summary and no new memories were kept.');
  assert.match(note({ status: 'pending', detail: 'The session is being finalized; ask again shortly.', saved: true }), /can take a moment/);
  assert.match(note({ status: null, detail: 'Incognito session: nothing was kept, so there is nothing to finalize.' }), /^Incognito: nothing/);
  assert.match(note({ status: 'failed', detail: 'memory refused the transcript: not_found', saved: true }), /went wrong/);
  assert.equal(note({ status: 'failed', problem: 'The voice service did not answer.', saved: true }), 'The voice service did not answer.');
  assert.match(note({ erased: true }), /erased, summaries included/);
  for (const status of ['completed', 'pending', 'in_progress', 'failed', null]) {
    for (const saved of [true, false]) assert.doesNotMatch(note({ status, detail: operator, saved }), /Finalized|substantive|crisis|finaliz/i);
  }
});

test('microphone problems in plain words', () => {
  assert.match(micProblem(new DOMException('x', 'NotAllowedError')), /blocked/);
  assert.match(micProblem({ name: 'NotFoundError' }), /No microphone/);
  assert.match(micProblem({ name: 'NotReadableError' }), /busy/);
  assert.match(micProblem(new Error('?')), /could not be started/);
});

test('conversation store: defaults, thread secrets, live tokens', () => {
  const map = new Map();
  const storage = { getItem: (k) => map.get(k) ?? null, setItem: (k, v) => map.set(k, v), removeItem: (k) => map.delete(k) };
  const fresh = loadConversation(storage);
  assert.match(fresh.thread_id, /^thread-[0-9a-f]{24}$/);
  assert.equal(fresh.memory_mode, 'incognito');
  for (let i = 0; i < 25; i += 1) keepThreadSecret(storage, `t${i}`, `secret-${i}`);
  assert.equal(threadSecret(storage, 't24'), 'secret-24');
  assert.equal(threadSecret(storage, 't0'), undefined);
  assert.equal(liveToken({ last: { token_expires_at: 100 } }, 200 * 1000), null);
  assert.ok(liveToken({ last: { token_expires_at: 1000 } }, 100 * 1000));
  map.set('opencouch.conversation.v1', '{broken');
  assert.equal(loadConversation(storage).assistant_voice, 'cedar');
});

test('event log redacts secrets, filters and exports', () => {
  const log = new EventLog();
  log.add('in', { type: 'session.created' }, 0);
  log.add('out', { type: 'response.create' }, 1);
  log.extra.session = { token: 'abc', client_secret: { value: 'ek_1' }, thread_secret: 's', session_id: 'vs_1' };
  assert.deepEqual(log.filtered({ direction: 'out' }).map((e) => e.type), ['response.create']);
  assert.deepEqual(log.filtered({ type: 'session' }).map((e) => e.type), ['session.created']);
  const exported = JSON.stringify(log.export());
  assert.ok(!exported.includes('ek_1') && !exported.includes('"abc"'));
  assert.equal(redacted({ a: [{ token: 'x' }] }).a[0].token, '[redacted]');
});

test('api helpers: traceparent, Retry-After, error bodies', () => {
  assert.match(traceparent(), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  assert.notEqual(traceparent(), traceparent());
  assert.equal(retryAfter('3'), 3000);
  assert.equal(retryAfter(null), null);
  assert.equal(retryAfter('soon'), null);
  const error = toApiError(409, { error: { code: 'session_ended', message: 'ended' } }, 1000);
  assert.deepEqual([error.code, error.status, error.retryAfterMs], ['session_ended', 409, 1000]);
  assert.equal(toApiError(502, null).code, 'service_unavailable');
});

test('the call bar says when the microphone is muted, only while connected', () => {
  assert.equal(connectionLabel('connected', false), 'Connected: speak whenever you are ready');
  assert.match(connectionLabel('connected', true), /microphone muted/);
  assert.equal(connectionLabel('reconnecting', true), 'Reconnecting: the conversation will carry on');
  assert.equal(connectionLabel('idle', true), 'Not connected');
});

test('a call lost for good can still be ended, on both pages; setup waits for no call', () => {
  // The developer page kept End disabled once the call was lost: its session could not be ended
  // with the person's choice.
  assert.deepEqual(controlsFor('disconnected'), { idle: true, endable: true });
  assert.deepEqual(controlsFor('connected'), { idle: false, endable: true });
  assert.deepEqual(controlsFor('reconnecting'), { idle: false, endable: true });
  assert.deepEqual(controlsFor('connecting'), { idle: false, endable: false });
  assert.deepEqual(controlsFor('ending'), { idle: false, endable: false });
  assert.deepEqual(controlsFor('ended'), { idle: true, endable: false });
  // An End that never reached the gateway: End again, or start another conversation.
  assert.deepEqual(controlsFor('end_failed'), { idle: true, endable: true });
});
