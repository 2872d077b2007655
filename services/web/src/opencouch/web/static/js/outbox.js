// The turn outbox: each finished turn is kept until POST /turn acknowledges it and retried with
// the same client_turn_id (stored once by the gateway), across failures and reloads. Persistent
// sessions' entries live in localStorage with their own session's token; incognito entries stay
// in memory only, so this device keeps nothing of them either.

export const OUTBOX_KEY = 'opencouch.outbox.v1';

/**
 * Acknowledged, worth retrying, or refused for good (the session ended, the token expired, the
 * id was reused: the same body can never succeed).
 * @param {Attempt} attempt @returns {'done' | 'retry' | 'drop'}
 */
export function verdict({ status }) {
  if (status >= 200 && status < 300) return 'done';
  return status === 0 || status === 408 || status === 429 || status >= 500 ? 'retry' : 'drop';
}

/** Wait before try `tries + 1`: Retry-After, else 1 s doubling up to 30 s. */
export const backoff = (tries, retryAfterMs) => Math.min(30000, retryAfterMs ?? 1000 * 2 ** Math.max(0, tries - 1));

export class Outbox {
  /**
   * @param {{storage: Storage | null, send: (entry: OutboxEntry) => Promise<Attempt>, now?: () => number,
   *   setTimer?: (fn: () => void, ms: number) => unknown, onChange?: (entry: OutboxEntry, state: string) => void}} deps
   */
  constructor(deps) {
    this.storage = deps.storage;
    this.send = deps.send;
    this.now = deps.now ?? Date.now;
    // Called as a function, never as this.setTimer's method: the browser's setTimeout throws
    // "Illegal invocation" when `this` is not the window.
    this.setTimer = deps.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.onChange = deps.onChange ?? (() => {});
    /** @type {OutboxEntry[]} */
    this.entries = this.#stored().map((e) => ({ ...e, persist: true, dueAt: 0 }));
    /** Ids settled here, so another tab's copy of them is not written back. */
    this.settledIds = new Set();
    /** @type {Array<() => boolean>} */
    this.waiters = [];
    /** @type {Promise<void> | null} */
    this.flushing = null;
    this.timer = false;
  }

  /** Keep a turn until acknowledged, and try to send it. @param {Omit<OutboxEntry, 'tries' | 'dueAt'>} entry */
  add(entry) {
    const added = { ...entry, tries: 0, dueAt: 0 };
    this.entries.push(added);
    this.#save();
    this.onChange(added, 'pending');
    return this.flush();
  }

  /** Forget every waiting turn, this tab's and stored ones: the person erased what was kept, so
   * none of them is sent (or left in this browser) after it. */
  clear() {
    const dropped = this.entries;
    for (const e of [...dropped, ...this.#stored()]) this.settledIds.add(e.id);
    this.entries = [];
    this.#save();
    for (const e of dropped) this.onChange(e, 'drop');
    this.waiters = this.waiters.filter((check) => !check());
  }

  /** Entries still waiting, of one session or all. @param {string} [sessionId] */
  pending(sessionId = undefined) {
    return this.entries.filter((e) => !sessionId || e.sessionId === sessionId);
  }

  /** True once nothing of `sessionId` waits; false after `timeoutMs`. @returns {Promise<boolean>} */
  settled(sessionId, timeoutMs) {
    return new Promise((resolve) => {
      const check = () => !this.pending(sessionId).length && (resolve(true), true);
      if (check()) return;
      this.waiters.push(check);
      this.setTimer(() => resolve(false), timeoutMs);
      void this.flush(true);
    });
  }

  /** Send each due entry (all of them when `now`), oldest first, one at a time. */
  flush(now = false) {
    if (now) for (const e of this.entries) e.dueAt = 0;
    this.flushing ??= this.#drain().finally(() => {
      this.flushing = null;
      this.#schedule();
    });
    return this.flushing;
  }

  async #drain() {
    for (let entry; (entry = this.entries.find((e) => e.dueAt <= this.now())); ) {
      /** @type {Attempt} */
      let attempt = { status: 401, code: 'token_expired' };
      if (entry.tokenExpiresAt * 1000 > this.now()) attempt = await this.send(entry).catch(() => ({ status: 0 }));
      const result = verdict(attempt);
      if (result === 'retry') {
        entry.tries += 1;
        entry.dueAt = this.now() + backoff(entry.tries, attempt.retryAfterMs);
      } else {
        this.entries = this.entries.filter((e) => e !== entry);
        this.settledIds.add(entry.id);
      }
      this.#save();
      this.onChange(entry, result === 'retry' ? 'pending' : result);
      this.waiters = this.waiters.filter((check) => !check());
    }
  }

  #schedule() {
    if (this.timer || !this.entries.length) return;
    this.timer = true;
    this.setTimer(() => {
      this.timer = false;
      void this.flush();
    }, Math.max(0, Math.min(...this.entries.map((e) => e.dueAt)) - this.now()));
  }

  /** @returns {OutboxEntry[]} */
  #stored() {
    try {
      const value = JSON.parse(this.storage?.getItem(OUTBOX_KEY) ?? '[]');
      return Array.isArray(value) ? value : [];
    } catch {
      return [];
    }
  }

  // Merged with what is stored, so two tabs never erase each other's turns.
  #save() {
    if (!this.storage) return;
    const mine = this.entries.filter((e) => e.persist);
    const ids = new Set(mine.map((e) => e.id));
    const keep = [...this.#stored().filter((e) => !ids.has(e.id) && !this.settledIds.has(e.id)), ...mine]
      .map(({ id, sessionId, token, tokenExpiresAt, body, tries }) => ({ id, sessionId, token, tokenExpiresAt, body, tries }));
    try {
      if (keep.length) this.storage.setItem(OUTBOX_KEY, JSON.stringify(keep));
      else this.storage.removeItem(OUTBOX_KEY);
    } catch {
      // Storage full or blocked: the turn still waits in memory for this page's life.
    }
  }
}
