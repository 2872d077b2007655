// What this browser keeps of a conversation between visits (localStorage): the thread and its
// setup, the last persistent session's token (for earlier turns and erasure), and each anonymous
// thread's secret, without which the gateway will not open that thread again. An incognito
// session's token is kept in the tab only (sessionStorage), until that session has ended. Each
// End the person pressed is kept, with its choice, until the gateway has answered it.

import { newThreadId, randomHex } from './ids.js';

export const CONVERSATION_KEY = 'opencouch.conversation.v1';
export const SECRETS_KEY = 'opencouch.thread-secrets.v1';
/** This tab's incognito session, in sessionStorage. */
export const TAB_SESSION_KEY = 'opencouch.tab-incognito-session.v1';
/** The Ends the gateway has not answered yet: persistent sessions' in localStorage. */
export const PENDING_ENDS_KEY = 'opencouch.pending-ends.v1';
/** This tab's incognito sessions' Ends not answered yet, in sessionStorage. */
export const TAB_PENDING_ENDS_KEY = 'opencouch.tab-incognito-pending-ends.v1';
/** This tab's id, in sessionStorage: it survives the tab's reloads, and names the tab keeping an End. */
export const TAB_ID_KEY = 'opencouch.tab-id.v1';
/**
 * How long an End kept by another tab is left to that tab since it last tried it: the tab is
 * still sending it (its turns are in that tab's outbox, and the End must go after them). Left
 * alone longer, the tab was closed or gave up, and any tab sends it. Well past the longest wait
 * between two tries of a tab still at it (the 30 s wait for its turns, a 30 s backoff).
 */
export const END_LEASE_MS = 2 * 60 * 1000;

/** This tab's sessionStorage, which the browser drops with the tab; null without one (node) or
 * when the browser blocks it. @returns {Storage | null} */
export function tabStorage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}

/** This page's tab id when sessionStorage is not there to keep it (node, blocked): no reload shares it. */
let pageTabId = '';

/** This tab's id: the same across the tab's reloads, another in every other tab. @returns {string} */
export function tabId() {
  const store = tabStorage();
  try {
    const kept = store?.getItem(TAB_ID_KEY);
    if (kept) return kept;
    if (store) {
      const id = `tab-${randomHex(8)}`;
      store.setItem(TAB_ID_KEY, id);
      return id;
    }
  } catch {
    // Blocked storage: the page's own id.
  }
  return (pageTabId ||= `tab-${randomHex(8)}`);
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
 * The person's End of a session that the gateway has not answered yet: the session's token and
 * their choice, for a later try (a Connect, a reload) to send. `persistent`: kept in localStorage
 * with the conversation; an incognito session's is kept in this tab's sessionStorage only, as its
 * token is (keepLastSession). Kept, it also says which tab keeps it (`tab`, tabId()) and when
 * that tab last tried it (`tried_at`, ms): another tab of the browser leaves it to that one for
 * END_LEASE_MS (sendableEnd).
 * @typedef {{session_id: string, token: string, token_expires_at: number, persistent: boolean,
 *   end: import('./api.js').EndBody, tab?: string, tried_at?: number}} PendingEnd
 */

/** The kept Ends of one store whose token is still valid: an expired one can end nothing, and
 * goes from storage as soon as it is read, with its token. @param {Storage | null} store
 * @param {string} key @returns {PendingEnd[]} */
function storedEnds(store, key, now = Date.now()) {
  const kept = read(store, key);
  const ends = (Array.isArray(kept) ? kept : []).filter(
    (e) => typeof e?.session_id === 'string' && typeof e.token === 'string' && e.end && typeof e.end === 'object' && e.token_expires_at * 1000 > now,
  );
  if (kept && !(Array.isArray(kept) && kept.length === ends.length)) writeEnds(store, key, ends);
  return ends;
}

/** @param {Storage | null} store @param {string} key @param {PendingEnd[]} ends */
function writeEnds(store, key, ends) {
  if (ends.length) return write(store, key, ends);
  try {
    store?.removeItem(key);
  } catch {
    // Blocked storage kept nothing.
  }
}

/**
 * Keep the person's End of a session, from the press until the gateway has answered it. Its own
 * list, apart from `last`: the next session replaces `last`, and an End that failed (the network
 * away) must outlive that, or the gateway's sweep would later end the session as saved, over an
 * "End without saving". A later End of the same session replaces its choice.
 * @param {Storage | null} storage @param {PendingEnd} end
 */
export function keepPendingEnd(storage, end, tab = tabId(), now = Date.now()) {
  const [store, key] = end.persistent ? [storage, PENDING_ENDS_KEY] : [tabStorage(), TAB_PENDING_ENDS_KEY];
  writeEnds(store, key, [...storedEnds(store, key, now).filter((e) => e.session_id !== end.session_id), { ...end, tab, tried_at: now }]);
}

/**
 * The tab `tab` tries the kept End of `sessionId` now: it is that tab's, and left to it for
 * END_LEASE_MS more. Nothing when that End is not kept (answered, never pressed).
 * @param {Storage | null} storage @param {string} sessionId @param {string} tab
 */
export function triedPendingEnd(storage, sessionId, tab = tabId(), now = Date.now()) {
  for (const [store, key] of /** @type {const} */ ([[tabStorage(), TAB_PENDING_ENDS_KEY], [storage, PENDING_ENDS_KEY]])) {
    const ends = storedEnds(store, key, now);
    if (ends.some((e) => e.session_id === sessionId)) {
      writeEnds(store, key, ends.map((e) => (e.session_id === sessionId ? { ...e, tab, tried_at: now } : e)));
    }
  }
}

/** Whether the tab `tab` may send a kept End now: its own (a reload of it is the same tab), or
 * one its tab has left alone for END_LEASE_MS (closed, or gave up). @param {PendingEnd} end @param {string} tab */
export const sendableEnd = (end, tab, now = Date.now()) =>
  !end.tab || end.tab === tab || !(Math.abs(now - (end.tried_at ?? 0)) < END_LEASE_MS);

/** Every kept End not yet answered: this tab's incognito ones, then the persistent ones (of
 * every tab: see sendableEnd). @param {Storage | null} storage @returns {PendingEnd[]} */
export const pendingEnds = (storage, now = Date.now()) => [
  ...storedEnds(tabStorage(), TAB_PENDING_ENDS_KEY, now), ...storedEnds(storage, PENDING_ENDS_KEY, now),
];

/** The gateway has answered the End of `sessionId`: it is kept no more (nor its token).
 * @param {Storage | null} storage @param {string} sessionId */
export function forgetPendingEnd(storage, sessionId) {
  for (const [store, key] of /** @type {const} */ ([[tabStorage(), TAB_PENDING_ENDS_KEY], [storage, PENDING_ENDS_KEY]])) {
    // Rewritten whenever anything is kept, so the expired ones go too.
    if (read(store, key)) writeEnds(store, key, storedEnds(store, key).filter((e) => e.session_id !== sessionId));
  }
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
