// The inspector's record: data-channel events in and out, gateway replies and latency marks,
// filterable and exportable as one JSON document. Secrets never enter it.

const SECRET_FIELDS = new Set(['token', 'thread_secret', 'client_secret', 'identity_token']);

/** A deep copy with every secret-bearing field replaced. @returns {any} */
export function redacted(value) {
  if (Array.isArray(value)) return value.map(redacted);
  if (!value || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_FIELDS.has(k) && v != null ? '[redacted]' : redacted(v)]));
}

/** @typedef {{at: number, direction: 'in' | 'out', type: string, event: any}} LogEntry */
/** @typedef {{type?: string, direction?: string}} LogFilter `type` matches a substring */

export class EventLog {
  constructor(limit = 20000) {
    this.limit = limit;
    /** @type {LogEntry[]} */
    this.entries = [];
    /** @type {Record<string, any>} exported beside the events */
    this.extra = {};
  }

  /** @param {'in' | 'out'} direction @param {RealtimeEvent} event */
  add(direction, event, at = Date.now()) {
    const entry = { at, direction, type: String(event?.type ?? 'unknown'), event: redacted(event) };
    if (this.entries.push(entry) > this.limit) this.entries.shift();
    return entry;
  }

  /** @param {LogFilter} filter @param {LogEntry} entry */
  static matches(filter, entry) {
    return (!filter.direction || entry.direction === filter.direction) && (!filter.type || entry.type.includes(filter.type.trim()));
  }

  /** @param {LogFilter} filter */
  filtered(filter) {
    return this.entries.filter((e) => EventLog.matches(filter, e));
  }

  types() {
    return [...new Set(this.entries.map((e) => e.type))].sort();
  }

  export() {
    return {
      exported_at: new Date().toISOString(),
      ...redacted(this.extra),
      events: this.entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
    };
  }
}
