// The public voice API, /api/voice/realtime/*, as the browser calls it.
//
// Every failure becomes an ApiError with a machine-readable code and a message written for
// the person using the page; the gateway's own {"error": {"code", "message"}} is kept as is.

const REQUEST_TIMEOUT_MS = 20000;

export class ApiError extends Error {
  /**
   * @param {string} code machine-readable, e.g. "invalid_request" or "network_error"
   * @param {string} message plain words for the user
   * @param {number} status HTTP status, 0 when there was no reply
   */
  constructor(code, message, status) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
  }
}

export class VoiceApi {
  /** @param {string} baseUrl the gateway's browser-facing base, without a trailing "/" */
  constructor(baseUrl) {
    this.baseUrl = baseUrl;
  }

  /**
   * Start a voice session: the Realtime session config and an ephemeral client secret.
   * @param {{thread_id: string, user_id?: string, memory_mode: string, assistant_voice: string}} request
   */
  createSession(request) {
    return this.#post('/api/voice/realtime/session', request);
  }

  async #post(path, body) {
    let response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
        // No cookies: the gateway authorises each session by its own capability, not by ambient
        // credentials, so a cross-origin call needs none.
        credentials: 'omit',
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === 'TimeoutError') {
        throw new ApiError('timeout', 'The voice service took too long to answer. Please try again.', 0);
      }
      throw new ApiError(
        'network_error',
        'Could not reach the voice service. Check your connection and try again.',
        0,
      );
    }
    const payload = await readJson(response);
    if (response.ok && payload !== undefined) {
      return payload;
    }
    throw toApiError(response.status, payload);
  }
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return undefined;
  }
}

function toApiError(status, payload) {
  const error = payload && typeof payload === 'object' ? payload.error : undefined;
  if (error && typeof error.code === 'string' && typeof error.message === 'string') {
    return new ApiError(error.code, error.message, status);
  }
  if (status >= 200 && status < 300) {
    return new ApiError('invalid_reply', 'The voice service sent a reply this page cannot read.', status);
  }
  return new ApiError(
    status >= 500 ? 'service_unavailable' : 'http_error',
    `The voice service answered with an error (HTTP ${status}). Please try again.`,
    status,
  );
}

/**
 * A copy of a session reply that is safe to show: the client secret's value is replaced.
 * The secret opens a Realtime session as this user, so it never reaches the screen or a log.
 */
export function withoutSecretValue(reply) {
  const copy = structuredClone(reply);
  if (copy && copy.client_secret && typeof copy.client_secret === 'object' && 'value' in copy.client_secret) {
    copy.client_secret.value = '[redacted]';
  }
  return copy;
}
