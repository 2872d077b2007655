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
const done = (id, output = []) => ({ type: 'response.done', response: { id, output } });
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

test('response.create waits for every call of the response and for response.done', async () => {
  const { r, sent } = relay();
  r.handle(args('c1', 'a'));
  r.handle(args('c2', 'b'));
  await settle();
  assert.equal(sent.filter((e) => e.type === 'response.create').length, 0);
  r.handle(done('r1'));
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
