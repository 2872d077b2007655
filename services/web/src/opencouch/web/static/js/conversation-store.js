// What this browser keeps of a conversation between visits (localStorage): the thread and its
// setup, the last persistent session's token (for earlier turns and erasure), and each anonymous
// thread's secret, without which the gateway will not open that thread again. An incognito
// session's token is kept in the tab only (sessionStorage), until that session has ended.

import { newThreadId } from './ids.js';

export const CONVERSATION_KEY = 'opencouch.conversation.v1';
export const SECRETS_KEY = 'opencouch.thread-secrets.v1';
/** This tab's incognito session, in sessionStorage. */
export const TAB_SESSION_KEY = 'opencouch.tab-incognito-session.v1';

/** This tab's sessionStorage, which the browser drops with the tab; null without one (node) or
 * when the browser blocks it. @returns {Storage | null} */
export function tabStorage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}

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

/** The last session's token while it is still valid. @param {{last?: SavedSession | null}} conversation */
export const liveToken = (conversation, now = Date.now()) =>
  conversation.last && conversation.last.token_expires_at * 1000 > now + 5000 ? conversation.last : null;

/**
 * Keep `last`, the session just started, as the conversation's last. A persistent session's
 * token is kept with the conversation in localStorage: a later visit shows its earlier turns,
 * and erases with it. An incognito session's token is never written to localStorage, where it
 * would outlive the conversation until it expired. It is kept in this tab's sessionStorage only,
 * not in memory alone: a reload must still end the session it left open (resume() finds it
 * there), and sessionStorage dies with the tab. It is removed there as soon as its session has
 * ended (End, a reload's end, an erasure).
 * @param {Storage | null} storage @param {SavedConversation} conversation @param {SavedSession} last @param {boolean} persistent
 */
export function keepLastSession(storage, conversation, last, persistent) {
  saveConversation(storage, { ...conversation, last: persistent ? last : null });
  if (persistent) forgetTabSession();
  else write(tabStorage(), TAB_SESSION_KEY, last);
}

/** The last session while its token is valid: this tab's incognito one, else the conversation's.
 * @param {Storage | null} storage @returns {SavedSession | null} */
export const liveSession = (storage, now = Date.now()) =>
  liveToken({ last: read(tabStorage(), TAB_SESSION_KEY) ?? loadConversation(storage).last }, now);

/** The session has ended: an incognito one's token is forgotten, a persistent one is marked so.
 * @param {Storage | null} storage @param {string} sessionId */
export function markSessionEnded(storage, sessionId) {
  if (read(tabStorage(), TAB_SESSION_KEY)?.session_id === sessionId) forgetTabSession();
  const saved = loadConversation(storage);
  const last = saved.last;
  if (last && last.session_id === sessionId) saveConversation(storage, { ...saved, last: { ...last, ended: true } });
}

/**
 * The person's End of a session, kept with it from the press until the gateway has answered:
 * a reload while the End still waits (for its turns, for the network) sends their choice, not
 * the default "save". @param {Storage | null} storage @param {string} sessionId
 * @param {import('./api.js').EndBody} choice
 */
export function keepEndChoice(storage, sessionId, choice) {
  const tab = read(tabStorage(), TAB_SESSION_KEY);
  if (tab?.session_id === sessionId) write(tabStorage(), TAB_SESSION_KEY, { ...tab, end: choice });
  const saved = loadConversation(storage);
  const last = saved.last;
  if (last && last.session_id === sessionId) saveConversation(storage, { ...saved, last: /** @type {SavedSession} */ ({ ...last, end: choice }) });
}

/** The End the person chose for a kept session, if they pressed one. @param {SavedSession} session
 * @returns {import('./api.js').EndBody | null} */
export function endChoice(session) {
  const choice = /** @type {{end?: unknown}} */ (session).end;
  return choice && typeof choice === 'object' ? choice : null;
}

/** Forget this tab's incognito session (its token). */
export function forgetTabSession() {
  try {
    tabStorage()?.removeItem(TAB_SESSION_KEY);
  } catch {
    // Blocked storage kept nothing.
  }
}

/** @param {Storage | null} storage @param {string} threadId @returns {string | undefined} */
export const threadSecret = (storage, threadId) => read(storage, SECRETS_KEY)?.[threadId];

/** Keep the secret an anonymous thread was bound to (the newest 20 threads). @param {Storage | null} storage */
export function keepThreadSecret(storage, threadId, secret) {
  const secrets = { ...read(storage, SECRETS_KEY) };
  delete secrets[threadId];
  write(storage, SECRETS_KEY, Object.fromEntries([...Object.entries(secrets).slice(-19), [threadId, secret]]));
}
