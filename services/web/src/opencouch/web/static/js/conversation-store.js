// What this browser keeps of a conversation between visits (localStorage): the thread and its
// setup, the last session's token (for earlier turns and erasure), and each anonymous thread's
// secret, without which the gateway will not open that thread again.

import { newThreadId } from './ids.js';

export const CONVERSATION_KEY = 'opencouch.conversation.v1';
export const SECRETS_KEY = 'opencouch.thread-secrets.v1';

/** @param {Storage | null} storage @param {string} key */
function read(storage, key) {
  try {
    const value = JSON.parse(storage?.getItem(key) ?? 'null');
    return value && typeof value === 'object' ? value : null;
  } catch {
    return null;
  }
}

/** @param {Storage | null} storage @param {string} key */
function write(storage, key, value) {
  try {
    storage?.setItem(key, JSON.stringify(value));
  } catch {
    // Private mode or a full store: the conversation is just not remembered.
  }
}

/** The saved conversation, or a new one. @param {Storage | null} storage @returns {SavedConversation} */
export function loadConversation(storage) {
  const saved = read(storage, CONVERSATION_KEY) ?? {};
  const text = (value, fallback) => (typeof value === 'string' && value ? value : fallback);
  return {
    thread_id: text(saved.thread_id, newThreadId()),
    user_id: text(saved.user_id, ''),
    memory_mode: saved.memory_mode === 'persistent' ? 'persistent' : 'incognito',
    assistant_voice: text(saved.assistant_voice, 'cedar'),
    last: saved.last ?? null,
  };
}

/** @param {Storage | null} storage @param {SavedConversation} conversation */
export const saveConversation = (storage, conversation) => write(storage, CONVERSATION_KEY, conversation);

/** The last session's token while it is still valid. @param {SavedConversation} conversation */
export const liveToken = (conversation, now = Date.now()) =>
  conversation.last && conversation.last.token_expires_at * 1000 > now + 5000 ? conversation.last : null;

/** @param {Storage | null} storage @param {string} threadId @returns {string | undefined} */
export const threadSecret = (storage, threadId) => read(storage, SECRETS_KEY)?.[threadId];

/** Keep the secret an anonymous thread was bound to (the newest 20 threads). @param {Storage | null} storage */
export function keepThreadSecret(storage, threadId, secret) {
  const secrets = { ...read(storage, SECRETS_KEY) };
  delete secrets[threadId];
  write(storage, SECRETS_KEY, Object.fromEntries([...Object.entries(secrets).slice(-19), [threadId, secret]]));
}
