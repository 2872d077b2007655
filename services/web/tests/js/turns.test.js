// Turn pairing from Realtime server events: order, late transcripts, tools, barge-in, latency.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TurnTracker, assistantText, clip, continuationItem, heardPart, jsonBytes, newToolCall, recentLines, turnRequest } from '../../src/opencouch/web/static/js/turns.js';

function tracker() {
  let n = 0;
  let clock = 1000;
  const closed = [];
  /** @type {Array<() => void>} timers waiting, run by `elapse()` */
  const timers = [];
  const t = new TurnTracker({ newId: () => `turn-${++n}`, now: () => clock, onClose: (turn) => closed.push(turn), later: (fn) => timers.push(fn) });
  return { t, closed, tick: (ms) => (clock += ms), elapse: () => timers.splice(0).forEach((fn) => fn()) };
}

const speech = (item) => [
  { type: 'input_audio_buffer.speech_started', item_id: item },
  { type: 'input_audio_buffer.speech_stopped', item_id: item },
  { type: 'input_audio_buffer.committed', item_id: item },
  { type: 'conversation.item.done', item: { id: item, type: 'message', role: 'user', content: [{ type: 'input_audio' }] } },
];
const transcript = (item, text) => ({ type: 'conversation.item.input_audio_transcription.completed', item_id: item, transcript: text });
const reply = (resp, item, text, output = []) => [
  { type: 'response.created', response: { id: resp } },
  { type: 'response.output_item.added', response_id: resp, item: { id: item, type: 'message', role: 'assistant' } },
  ...text.split(' ').map((w, i) => ({ type: 'response.output_audio_transcript.delta', response_id: resp, item_id: item, delta: (i ? ' ' : '') + w })),
  { type: 'response.output_audio_transcript.done', response_id: resp, item_id: item, transcript: text },
  { type: 'output_audio_buffer.started', response_id: resp },
  { type: 'response.done', response: { id: resp, status: 'completed', output } },
];
const stopped = (resp) => ({ type: 'output_audio_buffer.stopped', response_id: resp });

test('a spoken turn closes once its reply has finished playing', () => {
  const { t, closed } = tracker();
  for (const e of [...speech('u1'), transcript('u1', 'I had a long day.'), ...reply('r1', 'a1', 'That sounds tiring.')]) t.handle(e);
  assert.equal(closed.length, 0, 'still playing');
  t.handle(stopped('r1'));
  assert.equal(closed.length, 1);
  assert.equal(closed[0].userText, 'I had a long day.');
  assert.equal(assistantText(closed[0]), 'That sounds tiring.');
  assert.equal(closed[0].outcome, 'completed');
});

test('streamed assistant text is visible before the transcript is done', () => {
  const { t } = tracker();
  const events = reply('r1', 'a1', 'one two three');
  for (const e of [...speech('u1'), ...events.slice(0, 4)]) t.handle(e);
  assert.equal(assistantText(t.turns[0]), 'one two');
});

test('a late user transcript lands in the turn its speech started, not at the end', () => {
  const { t, closed } = tracker();
  for (const e of [...speech('u1'), ...reply('r1', 'a1', 'Go on.'), stopped('r1')]) t.handle(e);
  assert.equal(closed.length, 0, 'waits for the words');
  for (const e of speech('u2')) t.handle(e);
  t.handle(transcript('u1', 'first words'));
  assert.deepEqual(closed.map((c) => c.userText), ['first words']);
  assert.deepEqual(t.turns.map((c) => c.id), ['turn-1', 'turn-2']);
});

test('tool calls keep a turn open until the follow-up reply, except after wait_for_user', () => {
  const { t, closed } = tracker();
  const call = { type: 'function_call', call_id: 'c1', name: 'lookup_crisis_resources', arguments: '{}' };
  for (const e of [...speech('u1'), transcript('u1', 'help'), { type: 'response.created', response: { id: 'r1' } },
    { type: 'response.function_call_arguments.done', response_id: 'r1', call_id: 'c1', name: call.name, arguments: '{}' },
    { type: 'response.done', response: { id: 'r1', status: 'completed', output: [call] } }]) t.handle(e);
  t.toolUpdated({ ...t.turns[0].tools[0], status: 'done', ms: 40, output: { status: 'found' } });
  assert.equal(closed.length, 0, 'the model has not spoken yet');
  for (const e of [...reply('r2', 'a2', 'Here is a line you can call.'), stopped('r2')]) t.handle(e);
  assert.equal(closed.length, 1);
  assert.equal(closed[0].tools[0].status, 'done');

  const wait = { type: 'function_call', call_id: 'c2', name: 'wait_for_user', arguments: '{}' };
  for (const e of [...speech('u2'), transcript('u2', 'hold on'), { type: 'response.created', response: { id: 'r3' } },
    { type: 'response.done', response: { id: 'r3', status: 'completed', output: [wait] } }]) t.handle(e);
  assert.equal(closed.length, 1, 'its tool is still running');
  t.toolUpdated({ ...t.turns[1].tools[0], status: 'done', ms: 5, output: {} });
  assert.equal(closed.length, 2);
});

test('barge-in cuts the assistant line to what was heard', () => {
  const { t, closed } = tracker();
  const long = 'one two three four five six seven eight nine ten eleven twelve';
  for (const e of [...speech('u1'), transcript('u1', 'hi'), ...reply('r1', 'a1', long).slice(0, -1)]) t.handle(e);
  t.handle({ type: 'input_audio_buffer.speech_started', item_id: 'u2' });
  t.handle({ type: 'output_audio_buffer.cleared', response_id: 'r1' });
  t.handle({ type: 'conversation.item.truncated', item_id: 'a1', content_index: 0, audio_end_ms: 1500 });
  t.handle({ type: 'response.done', response: { id: 'r1', status: 'cancelled', output: [] } });
  assert.equal(closed.length, 1);
  assert.equal(assistantText(closed[0]), 'one two three four');
  assert.equal(heardPart(long, 0), '');
  assert.equal(heardPart('a b', 60000), 'a b');
});

test('a barge-in on a reply still playing after its response is done records what was heard, in either order', () => {
  const long = 'one two three four five six seven eight nine ten eleven twelve';
  const cleared = { type: 'output_audio_buffer.cleared', response_id: 'r1' };
  const truncated = { type: 'conversation.item.truncated', item_id: 'a1', content_index: 0, audio_end_ms: 1500 };
  for (const cut of [[cleared, truncated], [truncated, cleared]]) {
    const { t } = tracker();
    const bodies = [];
    t.onClose = (turn) => bodies.push(turnRequest(turn, {}));
    // Generated faster than it plays: response.done, then the person talks over the audio.
    for (const e of [...speech('u1'), transcript('u1', 'hi'), ...reply('r1', 'a1', long), ...speech('u2'), ...cut]) t.handle(e);
    assert.deepEqual(bodies.map((b) => b.assistant_text), [heardPart(long, 1500)], cut[0].type);
  }
});

test('a turn whose audio was cleared waits for its cut only briefly: a lost one leaves the whole line', () => {
  const { t, closed, elapse } = tracker();
  for (const e of [...speech('u1'), transcript('u1', 'hi'), ...reply('r1', 'a1', 'All of it.'), ...speech('u2')]) t.handle(e);
  t.handle({ type: 'output_audio_buffer.cleared', response_id: 'r1' });
  assert.equal(closed.length, 0, 'the truncation is on its way');
  elapse();
  assert.deepEqual(closed.map((c) => [assistantText(c), c.outcome]), [['All of it.', 'completed']]);
  elapse(); // nothing closes twice
  assert.equal(closed.length, 1);
});

test('a turn the person spoke over while its tool ran closes once the tool is done; a cut-off call asks for nothing', () => {
  const { t, closed } = tracker();
  const call = { type: 'function_call', call_id: 'c1', name: 'show_memory_status', arguments: '{}' };
  for (const e of [...speech('u1'), transcript('u1', 'Is memory on?'), { type: 'response.created', response: { id: 'r1' } },
    { type: 'response.done', response: { id: 'r1', status: 'completed', output: [call] } }]) t.handle(e);
  // The person speaks again; the follow-up, if Realtime takes it, goes to their new turn.
  for (const e of [...speech('u2'), transcript('u2', 'Hello?'), { type: 'response.created', response: { id: 'r2' } }]) t.handle(e);
  assert.equal(closed.length, 0, 'its tool still runs');
  t.toolUpdated({ ...t.turns[0].tools[0], status: 'done', ms: 40, output: { status: 'ok' } });
  assert.deepEqual(closed.map((c) => [c.userText, c.outcome]), [['Is memory on?', 'completed']]);

  // A response cut off by a barge-in: its call never runs, so no follow-up is waited for.
  const cut = { ...call, call_id: 'c2', name: 'confirm_memory_deletion', status: 'incomplete' };
  for (const e of [{ type: 'response.done', response: { id: 'r2', status: 'completed', output: [] } },
    ...speech('u3'), transcript('u3', 'Delete it.'), { type: 'response.created', response: { id: 'r3' } },
    { type: 'response.done', response: { id: 'r3', status: 'cancelled', output: [cut] } }]) t.handle(e);
  assert.equal(t.turns[2].followUp, false);
  t.toolUpdated({ ...t.turns[2].tools[0], status: 'skipped', output: { status: 'error', error: { code: 'interrupted' } }, sent: true });
  assert.deepEqual(closed.map((c) => c.userText), ['Is memory on?', 'Hello?', 'Delete it.']);
  assert.deepEqual(turnRequest(closed[2], {}).tool_calls, [
    { tool_name: 'confirm_memory_deletion', status: 'failed', output: { status: 'error', error: { code: 'interrupted' } }, error: 'interrupted' },
  ]);
});

test('closeAll keeps what was said as interrupted and drops empty turns', () => {
  const { t, closed } = tracker();
  for (const e of [...speech('u1'), transcript('u1', 'are you there'), { type: 'response.created', response: { id: 'r1' } }]) t.handle(e);
  for (const e of speech('u2')) t.handle(e);
  t.closeAll('connection_interrupted');
  assert.equal(closed.length, 1);
  assert.equal(closed[0].outcome, 'connection_interrupted');
  assert.equal(t.turns[1].discarded, true);
});

test('a typed message is a turn; the item the server echoes adds nothing', () => {
  const { t, closed } = tracker();
  t.typed('hello', 'item_x');
  t.handle({ type: 'conversation.item.added', item: { id: 'item_x', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello' }] } });
  for (const e of [...reply('r1', 'a1', 'Hi.'), stopped('r1')]) t.handle(e);
  assert.equal(t.turns.length, 1);
  assert.equal(closed[0].userText, 'hello');
});

test('a reply whose audio runs straight into the next one closes when the next one plays', () => {
  // A message typed while the first reply still plays: the server streams the second reply's
  // audio right after the first's, and need not say the first one's buffer stopped.
  const { t, closed } = tracker();
  for (const e of [...speech('u1'), transcript('u1', 'I had a rough week.'), ...reply('r1', 'a1', 'That sounds heavy.')]) t.handle(e);
  t.typed('Is memory on?', 'item_x');
  const second = reply('r2', 'a2', 'Memory is on.');
  for (const e of second.slice(0, -2)) t.handle(e);
  assert.equal(closed.length, 0, 'the first reply may still be playing');
  t.handle(second.at(-2)); // the second reply's audio starts: the first one's has ended
  assert.deepEqual(closed.map((c) => c.userText), ['I had a rough week.']);
  assert.equal(closed[0].outcome, 'completed');
  t.handle(second.at(-1));
  t.handle(stopped('r2'));
  assert.deepEqual(closed.map((c) => c.userText), ['I had a rough week.', 'Is memory on?']);
});

test('the buffer stopping after a later reply ends every earlier reply still marked playing', () => {
  const { t, closed } = tracker();
  for (const e of [...speech('u1'), transcript('u1', 'First.'), ...reply('r1', 'a1', 'One.')]) t.handle(e);
  t.typed('Second.', 'item_x');
  // No started event for the second reply at all: one buffer, one start, one stop.
  for (const e of reply('r2', 'a2', 'Two.').filter((e) => e.type !== 'output_audio_buffer.started')) t.handle(e);
  assert.equal(closed.length, 0, 'the second reply waits behind the first to be played');
  t.handle(stopped('r2'));
  assert.deepEqual(closed.map((c) => c.userText), ['First.', 'Second.']);
  assert.deepEqual(closed.map((c) => c.outcome), ['completed', 'completed']);
});

test('a reply queued behind one still playing can still be cut to what was heard', () => {
  const { t, closed } = tracker();
  for (const e of [...speech('u1'), transcript('u1', 'First.'), ...reply('r1', 'a1', 'One.')]) t.handle(e);
  t.typed('Second.', 'item_x');
  const second = reply('r2', 'a2', 'a reply of many words that was cut short');
  for (const e of second.filter((e) => e.type !== 'output_audio_buffer.started')) t.handle(e);
  assert.equal(closed.length, 0, 'done, but its audio has not played yet');
  t.handle({ type: 'output_audio_buffer.started', response_id: 'r2' });
  t.handle({ type: 'conversation.item.truncated', item_id: 'a2', audio_end_ms: 1500 });
  t.handle({ type: 'output_audio_buffer.cleared', response_id: 'r2' });
  assert.deepEqual(closed.map((c) => c.userText), ['First.', 'Second.']);
  assert.equal(assistantText(closed[1]), heardPart('a reply of many words that was cut short', 1500));
});

test('turnRequest fits the gateway contract, latency marks included', () => {
  const { t, closed, tick } = tracker();
  for (const e of speech('u1')) t.handle(e);
  tick(420);
  for (const e of [transcript('u1', 'x'.repeat(9000)), ...reply('r1', 'a1', 'ok'), stopped('r1')]) t.handle(e);
  const body = turnRequest(closed[0], { session_minted_ms: 12.345, connected_ms: -1 });
  assert.equal(body.client_turn_id, 'turn-1');
  assert.equal(body.user_text.length, 8000);
  assert.equal(body.outcome, 'completed');
  assert.deepEqual(body.latency, { session_minted_ms: 12.3, first_audio_ms: 420, tool_round_trips_ms: [] });
  assert.match(body.started_at, /^\d{4}-\d\d-\d\dT/);
});

test('recent lines and the continuation item carry the conversation over', () => {
  const { t, closed } = tracker();
  for (const e of [...speech('u1'), transcript('u1', 'my sister is visiting'), ...reply('r1', 'a1', 'How is that going?'), stopped('r1')]) t.handle(e);
  assert.deepEqual(recentLines(closed), [
    { role: 'user', text: 'my sister is visiting' }, { role: 'assistant', text: 'How is that going?' },
  ]);
  const item = continuationItem(closed);
  assert.equal(item.item.role, 'system');
  assert.match(item.item.content[0].text, /User: my sister is visiting\nAssistant: How is that going\?/);
  assert.equal(continuationItem([]), null);
});

test('a tool output the dropped call never took is not delivered: so the turn says, and the next session hears it', () => {
  const { t, closed } = tracker();
  for (const e of [...speech('u1'), transcript('u1', 'Who can I call?'), { type: 'response.created', response: { id: 'r1' } }]) t.handle(e);
  const call = { ...newToolCall('c1', 'lookup_crisis_resources', 'r1', '{}', 0, {}), status: 'failed', ms: 30, output: { status: 'found', resources: [{ name: 'Helpline' }] } };
  t.toolUpdated(/** @type {any} */ (call));
  t.closeAll('connection_interrupted');
  assert.deepEqual(turnRequest(closed[0], {}).tool_calls[0].error, 'not_delivered');
  const text = continuationItem(closed).item.content[0].text;
  assert.match(text, /User: Who can I call\?\nThe result of your lookup_crisis_resources call did not reach you before the call dropped: \{"status":"found","resources":\[\{"name":"Helpline"\}\]\}\n/);
  // An output that was sent is the model's already: nothing is said of it again.
  assert.doesNotMatch(continuationItem([{ ...closed[0], tools: [{ ...call, status: 'done', sent: true }] }]).item.content[0].text, /did not reach/);
});

test('an incognito turn carries the lines said before it, and only those', () => {
  const { t, closed } = tracker();
  for (const e of [...speech('u1'), transcript('u1', 'Everything feels pointless.'), ...reply('r1', 'a1', 'Are you thinking about suicide?'), stopped('r1')]) t.handle(e);
  for (const e of [...speech('u2'), transcript('u2', 'Yes.'), ...reply('r2', 'a2', 'Thank you for telling me.'), stopped('r2')]) t.handle(e);
  const [first, second] = closed;
  const earlier = [{ role: 'user', text: 'Long ago.' }];
  const carried = [{ ...first, userText: 'Long ago.', lines: [] }]; // a turn of an earlier session
  assert.deepEqual(turnRequest(first, {}, [...carried, ...t.before(first)]).transcript, earlier);
  assert.deepEqual(turnRequest(second, {}, t.before(second)).transcript, [
    { role: 'user', text: 'Everything feels pointless.' }, { role: 'assistant', text: 'Are you thinking about suicide?' },
  ]);
  // A persistent turn's body is as it was: the service keeps its context itself.
  assert.equal('transcript' in turnRequest(second, {}), false);
});

test('a turn that closes after a later one carries only what was said before it, as known then', () => {
  const bodies = [];
  let n = 0;
  const t = new TurnTracker({ newId: () => `turn-${++n}`, now: () => 1000, onClose: (turn) => bodies.push(turnRequest(turn, {}, t.before(turn))) });
  for (const e of [...speech('u1'), ...reply('r1', 'a1', 'Mm-hm.'), stopped('r1')]) t.handle(e);
  for (const e of [...speech('u2'), transcript('u2', 'And then it rained.'), ...reply('r2', 'a2', 'Oh no.'), stopped('r2')]) t.handle(e);
  t.handle(transcript('u1', 'I went for a walk.')); // the first turn's words come last
  const [second, first] = bodies;
  assert.deepEqual([second.user_text, first.user_text], ['And then it rained.', 'I went for a walk.']);
  assert.deepEqual(second.transcript, [{ role: 'assistant', text: 'Mm-hm.' }]);
  assert.deepEqual(first.transcript, []);
  assert.deepEqual(t.before({ ...t.turns[0] }), []); // not one of its turns
});

test('text is cut to the gateway bounds in code points, never inside a surrogate pair', () => {
  const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
  const text = `a${'\u{1F600}'.repeat(9000)}`; // a pair would straddle every odd cut
  assert.equal(clip('short', 8000), 'short');
  for (const max of [1, 2, 999, 1000, 8000]) {
    const cut = clip(text, max);
    assert.equal(Array.from(cut).length, max);
    assert.equal(lone.test(cut), false, `cut at ${max}`);
  }
  const { t, closed } = tracker();
  t.typed(text, 'item_u');
  for (const e of [...reply('r1', 'a1', text), stopped('r1')]) t.handle(e);
  const body = turnRequest(closed[0], {}, closed);
  for (const value of [body.user_text, body.assistant_text, ...body.transcript.map((l) => l.text)]) {
    assert.equal(lone.test(value), false);
  }
  assert.equal(Array.from(body.transcript[0].text).length, 1000);
});

test('a tool output is measured as the gateway bounds it, in UTF-8 bytes with its separators', () => {
  // As Python's len(json.dumps(value, ensure_ascii=False).encode()) counts them.
  assert.equal(jsonBytes({ a: [1, [], {}], b: { c: 'é今😀' }, d: null }), 54);
  assert.equal(jsonBytes([[[]], { x: 'a"b\\n\n' }]), 26);
  assert.deepEqual([{}, [], 'x', 3].map(jsonBytes), [2, 2, 3, 1]);
  const kept = (output) => {
    const call = { ...newToolCall('c1', 'recall_saved_memory', 'r1', '{}', 0, {}), status: 'done', sent: true, ms: 30, output };
    const turn = { id: 'turn-1', userText: 'Do you remember?', lines: [], tools: [call], startedAt: 0, outcome: 'completed', firstAudioMs: null };
    return 'output' in turnRequest(/** @type {any} */ (turn), {}).tool_calls[0];
  };
  // 6,000 characters of Japanese are 18,000 bytes: over the gateway's 16 KiB, which would
  // refuse the whole turn, though the string is 6,000 UTF-16 units long.
  assert.equal(kept({ items: [{ text: '今日は仕事の話'.repeat(858) }] }), false);
  assert.equal(kept({ items: [{ text: 'a'.repeat(14000) }] }), true);
  // 7,000 digits: 14,001 bytes compact, but 20,000 with the space after each comma.
  assert.equal(kept({ items: Array(7000).fill(1) }), false);
});
