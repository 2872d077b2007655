// Entry point of /voice/realtime-dev, the inspector: the /voice conversation, shown raw.

import { VoiceApi, asApiError, loadConfig } from './api.js';
import { VoiceConversation } from './conversation.js';
import { EventLog } from './event-log.js';
import { CONNECTION_LABELS, controlsFor, toolStatus, toolTime } from './presenters.js';
import { bindSessionForm } from './session-form.js';
import { TranscriptView, byId, el, showProblem } from './views.js';

const json = (value) => JSON.stringify(value, null, 2);

/** @param {string} label */
function expandable(label, value) {
  const details = el('details');
  details.append(el('summary', '', label), el('pre', '', json(value)));
  return details;
}

async function main() {
  const log = new EventLog();
  const extra = log.extra;
  Object.assign(extra, { sessions: [], gateway: [], latency: {}, tool_calls: {} });
  const list = byId('events');
  const type = /** @type {HTMLInputElement} */ (byId('filter-type'));
  const direction = /** @type {HTMLSelectElement} */ (byId('filter-direction'));
  const transcript = new TranscriptView(byId('transcript'));
  const filter = () => ({ type: type.value, direction: direction.value });

  /** @param {import('./event-log.js').LogEntry} entry */
  const row = (entry) => {
    const item = el('li', `event ${entry.direction}`);
    Object.assign(item.dataset, { direction: entry.direction, type: entry.type });
    item.append(el('time', '', new Date(entry.at).toISOString().slice(11, 23)), el('span', 'dir', entry.direction), expandable(entry.type, entry.event));
    return item;
  };
  const count = () => (byId('event-count').textContent = `${list.childElementCount} of ${log.entries.length} events`);
  const redraw = () => {
    list.replaceChildren(...log.filtered(filter()).map(row));
    byId('event-types').replaceChildren(...log.types().map((t) => Object.assign(el('option'), { value: t })));
    count();
  };
  type.addEventListener('input', redraw);
  direction.addEventListener('change', redraw);
  byId('export').addEventListener('click', () => {
    const href = URL.createObjectURL(new Blob([json(log.export())], { type: 'application/json' }));
    Object.assign(el('a'), { href, download: `realtime-log-${Date.now()}.json` }).click();
    setTimeout(() => URL.revokeObjectURL(href), 10000);
  });

  const config = await loadConfig().catch((error) => void showProblem(asApiError(error)));
  if (!config) return;
  const storage = globalThis.localStorage ?? null;
  const conversation = new VoiceConversation(new VoiceApi(config.apiBaseUrl), storage, /** @type {HTMLAudioElement} */ (byId('assistant-audio')));
  /** @param {string} name @param {(detail: any) => void} handler */
  const on = (name, handler) => conversation.addEventListener(name, (event) => handler(/** @type {CustomEvent} */ (event).detail));

  on('event', (detail) => {
    const entry = log.add(detail.direction, detail.event);
    if (EventLog.matches(filter(), entry)) list.append(row(entry));
    count();
  });
  on('state', ({ state, reason }) => {
    const node = byId('connection-state');
    node.dataset.state = state;
    node.textContent = `${CONNECTION_LABELS[state] ?? state}${reason ? ` (${reason})` : ''}`;
    const { idle, endable } = controlsFor(state);
    byId('setup-fields').toggleAttribute('disabled', !idle);
    /** @type {HTMLButtonElement} */ (byId('connect')).disabled = !idle;
    for (const id of ['end-keep', 'end-discard']) /** @type {HTMLButtonElement} */ (byId(id)).disabled = !endable;
    if (state === 'connecting') showProblem(null);
  });
  on('problem', showProblem);
  on('session', (reply) => (extra.sessions.push(reply), (byId('session-reply').textContent = json(reply))));
  on('gateway', (call) => {
    extra.gateway.push({ at: new Date().toISOString(), ...call });
    if (call.call === 'end' || call.call === 'finalization') byId('finalization').textContent = json(call);
  });
  on('latency', (marks) => {
    Object.assign(extra.latency, marks);
    byId('latency').replaceChildren(...Object.entries(extra.latency).map(([name, value]) => {
      const pair = el('div');
      pair.dataset.mark = name;
      pair.append(el('dt', '', name), el('dd', '', Array.isArray(value) ? value.join(', ') || 'none' : `${value} ms`));
      return pair;
    }));
  });
  on('turn', (turn) => transcript.render(turn));
  on('tool', (/** @type {ToolCall} */ call) => {
    extra.tool_calls[call.callId] = call;
    let item = /** @type {HTMLElement | null} */ (byId('tool-calls').querySelector(`[data-call-id="${CSS.escape(call.callId)}"]`));
    if (!item) byId('tool-calls').append((item = el('li', 'tool-call')));
    Object.assign(item.dataset, { callId: call.callId, status: call.status });
    item.replaceChildren(
      el('strong', '', call.name), el('span', 'tool-status', ` ${toolStatus(call)} `), el('span', 'tool-time', `round trip ${toolTime(call)}`),
      expandable('Request', { call_id: call.callId, arguments: call.arguments ?? call.argumentsText }), expandable('Output', call.output),
    );
  });

  bindSessionForm(/** @type {HTMLFormElement} */ (byId('session-form')), storage, { onSubmit: (setup) => conversation.connect(setup) });
  byId('end-keep').addEventListener('click', () => void conversation.end({ save: true }));
  byId('end-discard').addEventListener('click', () => void conversation.end({ save: false }));
  byId('type-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ (byId('type-text'));
    if (conversation.sendText(input.value)) input.value = '';
  });
  addEventListener('pagehide', () => conversation.leave());
  await conversation.resume();
}

void main();
