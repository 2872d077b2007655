// The end of a conversation: how long a finalization still in progress is polled.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FINALIZATION_POLL_MS, finalizationPollDelay } from '../../src/opencouch/web/static/js/conversation.js';

const MINUTE = 60 * 1000;

test('a finalization in progress is polled, more slowly, for as long as the finalizer may wait', () => {
  assert.deepEqual([1, 2, 5, 10, 11, 500].map((tries) => finalizationPollDelay(tries, 0)), [1000, 2000, 5000, 10000, 10000, 10000]);
  // The finalizer waits up to 30 minutes for memory, with the status in progress meanwhile:
  // the card keeps asking until then (it used to stop after 40 polls, about 6 minutes).
  assert.equal(finalizationPollDelay(200, 30 * MINUTE), 10000);
  assert.equal(finalizationPollDelay(250, FINALIZATION_POLL_MS), null);
});
