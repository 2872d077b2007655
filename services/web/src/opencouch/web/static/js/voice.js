// Entry point of /voice, the product page: setup, the live conversation, and its end.

import { VoiceApi, asApiError, loadConfig } from './api.js';
import { liveToken, loadConversation } from './conversation-store.js';
import { VoiceConversation } from './conversation.js';
import { connectionLabel, controlsFor } from './presenters.js';
import { bindSessionForm } from './session-form.js';
import { TranscriptView, byId, renderCrisis, renderFinalization, renderHistory, renderTool, showProblem } from './views.js';

const button = (id) => /** @type {HTMLButtonElement} */ (byId(id));
const checked = (name) => /** @type {HTMLInputElement | null} */ (document.querySelector(`[name="${name}"]:checked`))?.value;

async function main() {
  const storage = globalThis.localStorage ?? null;
  const transcript = new TranscriptView(byId('transcript'));
  const typeForm = byId('type-form');
  const typeText = /** @type {HTMLInputElement} */ (byId('type-text'));
  const history = byId('history-list');
  /** @type {string | null} */
  let before = null;
  const showHistory = (shown) => (byId('history').hidden = !shown || !history.childElementCount);

  const config = await loadConfig().catch((error) => void showProblem(asApiError(error)));
  if (!config) return;
  const conversation = new VoiceConversation(new VoiceApi(config.apiBaseUrl), storage, /** @type {HTMLAudioElement} */ (byId('assistant-audio')));
  /** @param {string} type @param {(detail: any) => void} handler */
  const on = (type, handler) => conversation.addEventListener(type, (event) => handler(/** @type {CustomEvent} */ (event).detail));

  const showMode = () => {
    const incognito = checked('memory_mode') !== 'persistent';
    for (const id of ['memory-tools', 'end-discard', 'feedback']) byId(id).hidden = incognito;
    byId('incognito-banner').hidden = !incognito;
    button('end-keep').textContent = incognito ? 'End session' : 'End and keep';
  };

  const showState = () => {
    const node = byId('connection-state');
    node.dataset.state = conversation.state;
    node.textContent = connectionLabel(conversation.state, conversation.muted);
  };
  on('state', ({ state }) => {
    showState();
    // Disconnected: the person may carry on (Connect) or end, keeping what was said or not.
    const { idle, endable } = controlsFor(state);
    byId('setup-fields').toggleAttribute('disabled', !idle);
    // Erasing ends the owner's live sessions: only between conversations.
    button('erase').disabled = !idle;
    byId('end-options').hidden = !endable;
    typeForm.hidden = state !== 'connected';
    if (state === 'connecting') {
      showProblem(null);
      renderFinalization(null);
      // The feedback went with the last conversation's End: this one starts with none given.
      for (const radio of document.querySelectorAll('[name="feedback"]')) /** @type {HTMLInputElement} */ (radio).checked = false;
    }
    if (state === 'connected') byId('transcript-empty').hidden = true;
    // Disabling the setup or hiding the end buttons (or the typing form) drops the focus to the
    // page: take the person (and a screen reader) on to what they can do next. Focus that is
    // still somewhere (the mute button during a reconnect) is left where it is.
    const dropped = !document.activeElement || document.activeElement === document.body;
    if (dropped && state === 'connected') byId('conversation').focus();
    if (dropped && idle) byId(byId('error').hidden ? 'connect' : 'error').focus();
  });
  on('muted', (muted) => {
    const mute = button('mute');
    // The label says what a press does (a toggle's state in its name would read "Unmute, pressed").
    mute.toggleAttribute('data-muted', muted);
    mute.textContent = muted ? 'Unmute microphone' : 'Mute microphone';
    showState();
  });
  on('problem', (problem) => {
    showProblem(problem);
    // Told after the state (a failed connect): the problem is what to read next.
    if (problem && ['idle', 'ended', 'disconnected', 'end_failed'].includes(conversation.state)) byId('error').focus();
  });
  on('level', (value) => (/** @type {HTMLMeterElement} */ (byId('mic-level')).value = value));
  // The end of the conversation stays in view while the person is there: a phone shows only a
  // few turns, and a reply (or the support lines under it) must not grow out of sight. Someone
  // who scrolled up to read is left where they are.
  const follow = (update) => {
    const end = typeForm.hidden ? byId('transcript') : typeForm;
    const box = end.getBoundingClientRect();
    const following = box.top < innerHeight && box.bottom > 0;
    update();
    if (following) end.scrollIntoView({ block: 'nearest' });
  };
  on('turn', (turn) => follow(() => transcript.render(turn)));
  on('tool', (call) => {
    renderTool(byId('tools-body'), call);
    byId('tools-empty').hidden = true;
    follow(() => renderCrisis(call));
  });
  on('finalization', renderFinalization);
  on('history', (page) => {
    renderHistory(history, page.turns, page.older);
    before = page.before ?? null;
    byId('history-more').hidden = !before;
    showHistory(true);
  });
  on('outbox', () => {
    const n = conversation.outbox.pending().length;
    byId('outbox-status').textContent = n ? `${n} ${n === 1 ? 'turn is' : 'turns are'} waiting to be sent; retrying.` : '';
  });

  bindSessionForm(/** @type {HTMLFormElement} */ (byId('session-form')), storage, {
    onSubmit: (setup) => conversation.connect(setup),
    onChange: () => {
      showMode();
      // A new conversation shows none of the previous one's earlier turns.
      if (loadConversation(storage).last === null) showHistory(false);
    },
  });
  showMode();

  const end = (save) => {
    const feedback = checked('feedback');
    void conversation.end({ save, ...(feedback && save && { feedback }) });
  };
  button('mute').addEventListener('click', () => conversation.setMuted(!conversation.muted));
  button('end-keep').addEventListener('click', () => end(true));
  button('end-discard').addEventListener('click', () => end(false));
  typeForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (conversation.sendText(typeText.value)) typeText.value = '';
  });
  button('history-more').addEventListener('click', () => void conversation.loadHistory(before));

  const confirm = byId('erase-confirm');
  const ask = (open) => {
    confirm.hidden = !open;
    button(open ? 'erase-no' : 'erase').focus();
  };
  button('erase').addEventListener('click', () => ask(true));
  button('erase-no').addEventListener('click', () => ask(false));
  button('erase-yes').addEventListener('click', async () => {
    const result = byId('erase-result');
    try {
      const reply = await conversation.erase();
      const n = Object.values(reply.erased ?? {}).reduce((sum, count) => sum + Number(count), 0);
      result.textContent = `Erased ${n} saved ${n === 1 ? 'item' : 'items'}.`;
      showHistory(false);
      // The last session's summary, if it showed one, is gone too: the card no longer says "Saved".
      renderFinalization({ erased: true });
    } catch (error) {
      result.textContent = asApiError(error).message;
    }
    ask(false);
  });

  addEventListener('pagehide', () => conversation.leave());
  await conversation.resume();
  const saved = loadConversation(storage);
  if (saved.memory_mode === 'persistent' && liveToken(saved)) await conversation.loadHistory();
}

void main();
