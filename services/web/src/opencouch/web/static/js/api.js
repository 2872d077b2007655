// The public voice API, /api/voice/realtime/*. Every call but /session carries the voice-session
// token, and every call a fresh W3C traceparent. A failure is an ApiError: a machine-readable
// code and a message for the person using the page (the gateway's own error body kept as it is).

import { traceparent } from './ids.js';

export class ApiError extends Error {
  /**
   * @param {string} code e.g. "session_ended" or "network_error"
   * @param {string} message plain words for the user
   * @param {number} status HTTP status; 0 when there was no reply
   * @param {number | null} [retryAfterMs] from Retry-After (429, 503)
   */
  constructor(code, message, status, retryAfterMs = null) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/** @returns {ApiError} */
export const asApiError = (error) =>
  error instanceof ApiError ? error : new ApiError('unexpected', 'Something went wrong on this page. Please reload and try again.', 0);

/** Where this page finds the voice API, from /config.json. */
export async function loadConfig() {
  const body = await fetch('/config.json', { cache: 'no-store' }).then((r) => r.json()).catch(() => null);
  if (typeof body?.api_base_url !== 'string' || !body.api_base_url) {
    throw new ApiError('config_unavailable', 'This page could not load its settings. Please reload.', 0);
  }
  return { apiBaseUrl: body.api_base_url.replace(/\/+$/, '') };
}

/** @typedef {{status: number, body: any}} Reply */

/**
 * The /end body. `save: false` keeps no summary or new memory; `continued: true` says the
 * conversation goes on in a new session of the same thread (the call dropped or expired): the
 * session is closed now and finalized, with `save` and `feedback`, by the conversation's last
 * /end (the gateway ignores them beside `continued`).
 * @typedef {{save?: boolean, feedback?: string, continued?: boolean}} EndBody
 */

export class VoiceApi {
  /** @param {string} baseUrl the gateway's browser-facing base */
  constructor(baseUrl) {
    this.baseUrl = baseUrl;
  }

  /** @param {SessionSetup & {thread_secret?: string}} body */
  createSession = (body) => this.#call('POST', '/session', null, body);
  tool = (token, body) => this.#call('POST', '/tools', token, body);
  turn = (token, body) => this.#call('POST', '/turn', token, body);
  /** @param {string} token @param {EndBody} body */
  end = (token, body) => this.#call('POST', '/end', token, body);
  finalization = (token, sessionId) => this.#call('GET', `/sessions/${encodeURIComponent(sessionId)}/finalization`, token);
  /** A page of the thread's stored turns, going back from `before`. */
  threadTurns = (token, threadId, before) =>
    this.#call('GET', `/threads/${encodeURIComponent(threadId)}/turns${before ? `?before=${encodeURIComponent(before)}` : ''}`, token);
  erase = (token) => this.#call('POST', '/memory/erase', token, { confirm: 'erase everything' });

  /** @param {string} method @param {string} path @param {string | null} token @param {any} [body] @returns {Promise<Reply>} */
  async #call(method, path, token, body) {
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json', traceparent: traceparent() };
    if (body) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      // The token is the only credential: no cookies go to the gateway.
      response = await fetch(`${this.baseUrl}/api/voice/realtime${path}`, {
        method, headers, body: body && JSON.stringify(body), credentials: 'omit', signal: AbortSignal.timeout(20000),
      });
    } catch (error) {
      throw error instanceof DOMException && error.name === 'TimeoutError'
        ? new ApiError('timeout', 'The voice service took too long to answer. Please try again.', 0)
        : new ApiError('network_error', 'Could not reach the voice service. Check your connection and try again.', 0);
    }
    const payload = await response.json().catch(() => undefined);
    if (response.ok && payload !== undefined) return { status: response.status, body: payload };
    throw toApiError(response.status, payload, retryAfter(response.headers.get('Retry-After')));
  }
}

/** Retry-After (seconds or an HTTP date) in milliseconds, or null. @param {string | null} value */
export function retryAfter(value) {
  const at = !value ? NaN : Number.isFinite(Number(value)) ? Date.now() + Number(value) * 1000 : Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

/** @param {number} status @param {number | null} [retryAfterMs] */
export function toApiError(status, payload, retryAfterMs = null) {
  const error = payload?.error;
  if (typeof error?.code === 'string' && typeof error.message === 'string') return new ApiError(error.code, error.message, status, retryAfterMs);
  return new ApiError(
    status >= 500 ? 'service_unavailable' : 'http_error',
    `The voice service answered with an error (HTTP ${status}). Please try again.`, status, retryAfterMs,
  );
}
