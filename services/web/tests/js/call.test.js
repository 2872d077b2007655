// One WebRTC call: a connect that stalls anywhere (the SDP exchange, the answer, the channel)
// gives up by one deadline, hung up, and the conversation tells the person and frees the mic.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CONNECT_TIMEOUT_MS, RealtimeCall } from '../../src/opencouch/web/static/js/call.js';
import { FakePeer, conversation, hurry, peers, setup, until, useFakes } from './fake-realtime.js';

useFakes();

const microphone = () => {
  const tracks = [{ stopped: false, stop() { this.stopped = true; } }];
  return { tracks, stream: { getTracks: () => tracks, getAudioTracks: () => tracks } };
};

/** An SDP exchange that never answers, until aborted; `signals` gets each fetch's signal. */
function stalledExchange() {
  /** @type {AbortSignal[]} */
  const signals = [];
  globalThis.fetch = /** @type {any} */ ((_url, init) => new Promise((_resolve, reject) => {
    signals.push(init.signal);
    init.signal?.addEventListener('abort', () => reject(init.signal.reason));
  }));
  return signals;
}

test('an SDP exchange that never answers is aborted at the deadline and the call hung up', async () => {
  assert.equal(CONNECT_TIMEOUT_MS, 20000);
  hurry(1000);
  const signals = stalledExchange();
  const call = new RealtimeCall({
    url: 'https://realtime.test/v1/realtime/calls', secret: 'ek_test', mic: /** @type {any} */ (microphone().stream),
    audio: /** @type {any} */ ({}), onEvent: () => {}, onSent: () => {}, onEnd: () => assert.fail('a call that never opened does not end'),
  });
  await assert.rejects(call.connect(), { code: 'realtime_timeout' });
  assert.equal(signals[0].aborted, true);
  assert.equal(peers[0].connectionState, 'closed');
  assert.equal(call.channel.readyState, 'closed');
});

test('an answer that is never applied counts against the same deadline', async () => {
  hurry(1000);
  const answer = FakePeer.prototype.setRemoteDescription;
  FakePeer.prototype.setRemoteDescription = () => new Promise(() => {});
  const call = new RealtimeCall({
    url: 'https://realtime.test/v1/realtime/calls', secret: 'ek_test', mic: /** @type {any} */ (microphone().stream),
    audio: /** @type {any} */ ({}), onEvent: () => {}, onSent: () => {}, onEnd: () => {},
  });
  try {
    await assert.rejects(call.connect(), { code: 'realtime_timeout' });
  } finally {
    FakePeer.prototype.setRemoteDescription = answer;
  }
  assert.equal(peers[0].connectionState, 'closed');
});

test('a connect that stalls ends on "Not connected" with the problem said and the microphone off', async () => {
  const { api, talk, states, problems } = conversation();
  hurry(1000);
  stalledExchange();
  const mic = microphone();
  navigator.mediaDevices.getUserMedia = async () => mic.stream;
  await talk.connect(setup);

  assert.deepEqual(states, ['connecting', 'idle']);
  assert.deepEqual(problems.map((p) => p.code), ['realtime_timeout']);
  assert.match(problems[0].message, /took too long/);
  assert.equal(mic.tracks[0].stopped, true);
  assert.equal(peers[0].connectionState, 'closed');
  // The session that was made for the call is closed too.
  await until(() => api.ends.length === 1);
  assert.deepEqual(api.ends, [{ session: 'vs_1', body: { continued: true } }]);
});
