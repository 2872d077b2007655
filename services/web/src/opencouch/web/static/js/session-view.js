// Renders a session reply and API errors on /voice. Text only (textContent), never HTML, so
// nothing the server or model returns can inject markup.

const MEMORY_LABELS = {
  incognito: 'Incognito: nothing is kept after the session',
  persistent: 'Persistent: the session is saved and summarised',
};

export class SessionView {
  /** @param {Document} doc */
  constructor(doc) {
    this.doc = doc;
    this.status = doc.getElementById('status');
    this.errorBox = doc.getElementById('error');
    this.session = doc.getElementById('session');
  }

  /** Announce progress in the polite live region. */
  showStatus(text) {
    this.status.textContent = text;
  }

  /** Show an ApiError plainly, with its code for anyone reporting a problem. */
  showError(error) {
    this.#text('error-message', error.message);
    this.#text('error-code', error.code);
    this.errorBox.hidden = false;
    this.showStatus('');
  }

  clearError() {
    this.errorBox.hidden = true;
  }

  /** Show what the gateway set up; the client secret's value is never shown. */
  showSession(reply) {
    const config = reply.session ?? {};
    this.#text('session-id', reply.session_id ?? '');
    this.#text('session-model', config.model ?? '');
    this.#text('session-voice', config.audio?.output?.voice ?? '');
    this.#text('session-memory', MEMORY_LABELS[reply.memory_mode] ?? String(reply.memory_mode ?? ''));
    this.#text('session-secret', describeSecret(reply.client_secret));
    this.#text('session-instructions', config.instructions ?? '');

    const list = this.doc.getElementById('session-tools');
    const tools = Array.isArray(config.tools) ? config.tools : [];
    list.replaceChildren(
      ...tools.map((tool) => {
        const item = this.doc.createElement('li');
        item.textContent = tool.name;
        return item;
      }),
    );
    if (tools.length === 0) {
      const item = this.doc.createElement('li');
      item.textContent = 'None';
      list.append(item);
    }

    this.session.hidden = false;
  }

  hideSession() {
    this.session.hidden = true;
  }

  #text(id, value) {
    this.doc.getElementById(id).textContent = value;
  }
}

function describeSecret(secret) {
  if (!secret || typeof secret.value !== 'string' || secret.value === '') {
    return 'Not issued';
  }
  if (typeof secret.expires_at === 'number') {
    const expires = new Date(secret.expires_at * 1000);
    return `Issued, valid until ${expires.toLocaleTimeString()}`;
  }
  return 'Issued';
}
