// DOM views shared by /voice and /voice/realtime-dev. Text only (textContent), never HTML, so
// nothing a server or model returns can inject markup.

import { crisisCards, finalizationCard, toolStatus, toolTime } from './presenters.js';
import { lineText } from './turns.js';

/** @param {string} tag @param {string} [className] @param {string} [text] */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** @param {string} id */
export const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @param {'user' | 'assistant'} who @param {string} text @param {string} [note] */
function line(who, text, note) {
  const p = el('p', `line ${who}`);
  p.append(el('span', 'who', who === 'user' ? 'You' : 'Assistant'), el('span', 'said', text));
  if (note) p.append(el('span', 'note', note));
  return p;
}

/** The live transcript: one list item per turn, in the order the user started speaking. */
export class TranscriptView {
  /** @param {HTMLElement} list */
  constructor(list) {
    this.list = list;
    /** @type {Map<string, HTMLElement>} */
    this.items = new Map();
  }

  /** @param {Turn} turn */
  render(turn) {
    let item = this.items.get(turn.id);
    if (turn.discarded) return item?.remove();
    if (!item) {
      this.items.set(turn.id, (item = el('li', 'turn')));
      item.dataset.turnId = turn.id;
      this.list.append(item);
    }
    const lines = [];
    if (turn.userText || !turn.userDone) lines.push(line('user', turn.userText || '…', turn.userDone ? '' : 'listening'));
    else if (turn.userFailed) lines.push(line('user', '', 'not transcribed'));
    for (const said of turn.lines) {
      const text = lineText(said);
      if (text) lines.push(line('assistant', text, said.heardMs === null ? '' : 'interrupted'));
    }
    item.replaceChildren(...lines);
    // Screen readers announce a turn once it is complete, not each streamed word.
    item.setAttribute('aria-busy', String(!turn.closed));
    item.dataset.state = turn.closed ? turn.outcome : 'open';
  }
}

/**
 * Stored turns of earlier sessions (ThreadTurnsReply), oldest first; an older page goes on top.
 * @param {HTMLElement} list @param {any[]} turns @param {boolean} older
 */
export function renderHistory(list, turns, older) {
  const items = turns.map((turn) => {
    const item = el('li', 'turn earlier');
    item.dataset.turnId = turn.client_turn_id;
    if (turn.user_text) item.append(line('user', turn.user_text));
    if (turn.assistant_text) item.append(line('assistant', turn.assistant_text));
    return item;
  });
  if (older) list.prepend(...items);
  else list.replaceChildren(...items);
}

/** A tool activity row: tool, status, duration. @param {HTMLElement} body a tbody @param {ToolCall} call */
export function renderTool(body, call) {
  let row = /** @type {HTMLElement | null} */ (body.querySelector(`[data-call-id="${CSS.escape(call.callId)}"]`));
  if (!row) body.append((row = el('tr')));
  Object.assign(row.dataset, { callId: call.callId, status: call.status });
  row.replaceChildren(toolName(call.name), el('td', 'tool-status', toolStatus(call)), el('td', 'tool-time', toolTime(call)));
}

/** The name's cell, breakable after each underscore (<wbr>), as a narrow column needs. @param {string} name */
function toolName(name) {
  const cell = el('td', 'tool-name');
  name.split(/(?<=_)/).forEach((part, index) => cell.append(...(index ? [el('wbr'), part] : [part])));
  return cell;
}

/** Crisis lines as cards, only from a lookup_crisis_resources output. @param {ToolCall} call */
export function renderCrisis(call) {
  const cards = call.status === 'running' ? [] : crisisCards(call.name, call.output);
  if (!cards.length) return;
  byId('crisis-cards').replaceChildren(...cards.map((card) => {
    const node = el('article', 'card');
    node.append(el('h4', '', card.name), el('p', 'hint', card.region));
    if (card.phone) node.append(Object.assign(el('a', 'card-action', `Call ${card.phone}`), { href: card.phoneHref }));
    if (card.sms) node.append(el('p', '', `Text: ${card.sms}`));
    if (card.hours) node.append(el('p', 'hint', card.hours));
    if (card.url) node.append(Object.assign(el('a', '', 'Website'), { href: card.url, target: '_blank', rel: 'noopener noreferrer' }));
    return node;
  }));
  const section = byId('crisis');
  if (!section.hidden) return;
  section.hidden = false;
  // Shown for the first time: bring it into view if it is not (a phone's screen, a long call).
  section.scrollIntoView({ block: 'nearest' });
}

/** The finalization card. @param {Record<string, any> | null} reply */
export function renderFinalization(reply) {
  const card = finalizationCard(reply);
  const section = byId('finalization');
  section.dataset.status = card.status;
  section.setAttribute('aria-busy', String(card.status === 'in_progress'));
  const parts = [el('p', 'fin-status', card.label)];
  if (card.summary) parts.push(el('p', 'fin-summary', card.summary));
  if (card.themes.length) {
    const list = el('ul', 'fin-themes');
    list.append(...card.themes.map((theme) => el('li', '', theme)));
    parts.push(el('h3', '', 'Themes'), list);
  }
  if (card.moods) parts.push(el('p', 'fin-moods', `Mood: ${card.moods}`));
  if (card.note) parts.push(el('p', 'hint fin-note', card.note));
  /** @type {HTMLElement} */ (section.querySelector('.fin-body')).replaceChildren(...parts);
}

/** Show a problem plainly, with its code for anyone reporting it; null hides it. */
export function showProblem(problem) {
  byId('error').hidden = !problem;
  if (!problem) return;
  byId('error-message').textContent = problem.message;
  byId('error-code').textContent = problem.code;
}
