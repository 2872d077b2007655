// The session setup form shared by /voice and /voice/realtime-dev.

/** A new random thread id; it matches the API's identifier pattern. */
export function newThreadId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `thread-${hex}`;
}

/**
 * Read the form into the body of POST /api/voice/realtime/session.
 * @param {HTMLFormElement} form
 */
export function readSessionRequest(form) {
  const data = new FormData(form);
  const request = {
    thread_id: String(data.get('thread_id') ?? '').trim(),
    memory_mode: String(data.get('memory_mode') ?? 'incognito'),
    assistant_voice: String(data.get('assistant_voice') ?? 'cedar'),
  };
  const userId = String(data.get('user_id') ?? '').trim();
  if (userId !== '') {
    request.user_id = userId;
  }
  return request;
}

/**
 * Prefill the thread id, wire the "New" button, and call `onSubmit(request)` on submit.
 * While `onSubmit` runs the submit button is disabled, so a double click sends one request.
 * @param {HTMLFormElement} form
 * @param {(request: object) => Promise<void>} onSubmit
 */
export function bindSessionForm(form, onSubmit) {
  const threadInput = form.querySelector('#thread-id');
  const newThread = form.querySelector('#new-thread');
  const submit = form.querySelector('button[type="submit"]');

  threadInput.value = newThreadId();
  newThread?.addEventListener('click', () => {
    threadInput.value = newThreadId();
    threadInput.focus();
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (submit.disabled || !form.reportValidity()) {
      return;
    }
    submit.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      await onSubmit(readSessionRequest(form));
    } finally {
      submit.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });
}
