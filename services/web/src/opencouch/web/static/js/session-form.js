// The setup form of both pages, restored from the conversation this browser keeps.

import { loadConversation, saveConversation } from './conversation-store.js';
import { newThreadId } from './ids.js';

/** The form as the body of POST /session. @param {HTMLFormElement} form @returns {SessionSetup} */
export function readSetup(form) {
  const data = new FormData(form);
  const userId = String(data.get('user_id') ?? '').trim();
  return {
    thread_id: String(data.get('thread_id') ?? '').trim(),
    memory_mode: data.get('memory_mode') === 'persistent' ? 'persistent' : 'incognito',
    assistant_voice: String(data.get('assistant_voice') ?? 'cedar'),
    ...(userId && { user_id: userId }),
  };
}

/**
 * Fill the form from storage, keep storage in step with it, and run `onSubmit` on submit, one
 * at a time. "New conversation" picks a fresh thread id.
 * @param {HTMLFormElement} form @param {Storage | null} storage
 * @param {{onSubmit: (setup: SessionSetup) => Promise<void>, onChange?: () => void}} hooks
 */
export function bindSessionForm(form, storage, hooks) {
  const saved = loadConversation(storage);
  const field = (name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name));
  const submit = /** @type {HTMLButtonElement} */ (form.querySelector('[type="submit"]'));
  for (const name of ['thread_id', 'user_id', 'assistant_voice', 'memory_mode']) field(name).value = saved[name];
  // The pages serve the form disabled until it is filled: what someone typed earlier would be
  // overwritten, and Connect pressed earlier would submit it as a plain GET. Enabled before it is
  // first read, as FormData leaves disabled fields out.
  form.querySelector('#setup-fields')?.removeAttribute('disabled');
  submit.disabled = false;
  const remember = () => {
    if (!form.checkValidity()) return;
    const setup = readSetup(form);
    const current = loadConversation(storage);
    // Another thread does not inherit the last session's token.
    saveConversation(storage, { ...setup, user_id: setup.user_id ?? '', last: current.thread_id === setup.thread_id ? current.last : null });
    hooks.onChange?.();
  };
  form.addEventListener('change', remember);
  form.querySelector('#new-thread')?.addEventListener('click', () => {
    field('thread_id').value = newThreadId();
    remember();
  });
  remember();
  let submitting = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (submitting || submit.disabled || !form.reportValidity()) return;
    // Once submitted, the page's state handler enables and disables Connect: setting it here
    // when the connecting is done would enable it again during the call, doing nothing.
    submitting = true;
    try {
      await hooks.onSubmit(readSetup(form));
    } finally {
      submitting = false;
    }
  });
}
