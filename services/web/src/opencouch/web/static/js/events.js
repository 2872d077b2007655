// Events by which the page's modules hand a voice session to each other.

/**
 * Dispatched on `document` when POST /session succeeded; `detail` is the full reply, client
 * secret included, for the module that opens the WebRTC call. Never log or render `detail`.
 */
export const SESSION_READY = 'opencouch:session-ready';
