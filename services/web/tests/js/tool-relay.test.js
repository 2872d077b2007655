// The tool relay: one run per call_id, outputs back, and when to ask the model to speak.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { toolStatus } from '../../src/opencouch/web/static/js/presenters.js';
import { ToolRelay, parseArguments } from '../../src/opencouch/web/static/js/tool-relay.js';

function relay(results = {}) {
  const sent = [];
  const runs = [];
  const r = new ToolRelay({
    run: async (call) => {
      runs.push(call.callId);
      if (results[call.name] instanceof Error) throw results[call.name];
      return results[call.name] ?? { ok: true, output: { status: 'ok' } };
    },
    send: (e) => sent.push(e),
  });
  return { r, sent, runs };
}
const args = (call_id, name, response_id = 'r1', argumentsText = '{}') =>
  ({ type: 'response.function_call_arguments.done', call_id, name, response_id, arguments: argumentsText });
const done = (id, output = [], status = 'completed') => ({ type: 'response.done', response: { id, status, output } });
const settle = () => new Promise((resolve) => setImmediate(resolve));

test('a duplicated call runs once; its output, then one response.create', async () => {
  const { r, sent, runs } = relay();
  r.handle(args('c1', 'show_memory_status'));
  r.handle(args('c1', 'show_memory_status'));
  r.handle({ type: 'response.output_item.done', response_id: 'r1', item: { type: 'function_call', call_id: 'c1', name: 'show_memory_status', arguments: '{}' } });
  r.handle(done('r1', [{ type: 'function_call', call_id: 'c1', name: 'show_memory_status' }]));
  await settle();
  assert.deepEqual(runs, ['c1']);
  assert.deepEqual(sent.map((e) => e.type), ['conversation.item.create', 'response.create']);
  assert.deepEqual(sent[0].item, { type: 'function_call_output', call_id: 'c1', output: '{"status":"ok"}' });
});

test('calls run once their response is done; response.create waits for every one of them', async () => {
  const { r, sent, runs } = relay();
  r.handle(args('c1', 'a'));
  r.handle(args('c2', 'b'));
  await settle();
  assert.deepEqual([runs, sent], [[], []], 'the response may yet be cut off');
  r.handle(done('r1'));
  await settle();
  assert.deepEqual(sent.map((e) => e.type), ['conversation.item.create', 'conversation.item.create', 'response.create']);
});

test('after wait_for_user the output is sent but no reply is asked for', async () => {
  const { r, sent } = relay();
  r.handle(args('c1', 'wait_for_user'));
  r.handle(done('r1'));
  await settle();
  assert.deepEqual(sent.map((e) => e.type), ['conversation.item.create']);
});

test('a call only in response.done still runs; bad arguments and failures become outputs', async () => {
  const { r, sent, runs } = relay({ broken: new Error('down') });
  r.handle(done('r1', [{ type: 'function_call', call_id: 'c9', name: 'broken', arguments: '{}' }]));
  r.handle(args('c3', 'x', 'r2', '[1, 2]'));
  r.handle(done('r2'));
  await settle();
  assert.deepEqual(runs, ['c9']);
  const outputs = Object.fromEntries(sent.filter((e) => e.item).map((e) => [e.item.call_id, JSON.parse(e.item.output)]));
  assert.equal(outputs.c9.error.code, 'tool_unavailable');
  assert.equal(outputs.c3.error.code, 'invalid_arguments');
  assert.equal([...r.calls.values()].every((c) => c.status === 'failed' && c.ms !== null), true);
});

test('a call of a response cut off never runs: an interrupted output, no response.create, and it shows as not run', async () => {
  for (const status of ['cancelled', 'incomplete', 'failed']) {
    const sent = [];
    const runs = [];
    const updates = [];
    const r = new ToolRelay({
      run: async (call) => (runs.push(call.callId), { ok: true, output: { deleted: 3 } }),
      send: (e) => (sent.push(e), true),
      onUpdate: (call) => updates.push({ ...call }),
    });
    r.handle(args('c1', 'confirm_memory_deletion'));
    r.handle(done('r1', [{ type: 'function_call', status: 'incomplete', call_id: 'c1', name: 'confirm_memory_deletion', arguments: '{}' }], status));
    r.handle(args('c1', 'confirm_memory_deletion')); // a late duplicate runs nothing either
    await settle();
    assert.deepEqual(runs, [], status);
    assert.deepEqual(sent.map((e) => e.type), ['conversation.item.create'], status);
    assert.equal(sent[0].item.call_id, 'c1');
    assert.deepEqual(JSON.parse(sent[0].item.output).error.code, 'interrupted');
    const call = updates.at(-1);
    assert.deepEqual([updates.length, call.status, call.sent, toolStatus(call)], [1, 'skipped', true, 'Not run'], status);
    assert.equal(r.busy, false);
  }
});

test('a completed response runs its calls even when a cut-off one came before it', async () => {
  const { r, sent, runs } = relay();
  r.handle(args('c1', 'confirm_memory_deletion'));
  r.handle(done('r1', [], 'cancelled'));
  r.handle(args('c2', 'show_memory_status', 'r2'));
  r.handle(done('r2'));
  await settle();
  assert.deepEqual(runs, ['c2']);
  assert.deepEqual(sent.map((e) => e.item?.call_id ?? e.type), ['c1', 'c2', 'response.create']);
});

test('parseArguments', () => {
  assert.deepEqual(parseArguments(''), {});
  assert.deepEqual(parseArguments('{"a": 1}'), { a: 1 });
  assert.equal(parseArguments('nope'), null);
  assert.equal(parseArguments('"text"'), null);
});

test('an output the closed call could not take is not Done, and no reply is asked for', async () => {
  const sent = [];
  const updates = [];
  const r = new ToolRelay({
    run: async () => ({ ok: true, output: { status: 'found' } }),
    send: (e) => (sent.push(e), false), // the channel closed while the tool ran
    onUpdate: (call) => updates.push({ ...call }),
  });
  r.handle(args('c1', 'lookup_crisis_resources'));
  r.handle(done('r1'));
  await settle();
  assert.deepEqual(sent.map((e) => e.type), ['conversation.item.create']);
  const call = updates.at(-1);
  assert.deepEqual([call.status, call.sent, call.output], ['failed', false, { status: 'found' }]);
  assert.equal(toolStatus(call), 'Not delivered');
  assert.equal(r.busy, false);
});
