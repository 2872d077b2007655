// Ids the client chooses: threads, turns, typed items, and W3C trace context.

/** @param {number} bytes */
export const randomHex = (bytes) => Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');

export const newThreadId = () => `thread-${randomHex(12)}`;
/** The secret a new anonymous thread is bound to (256 bits; the gateway wants 32 characters or more). */
export const newThreadSecret = () => `ts-${randomHex(32)}`;
/** A client_turn_id: chosen once, resent unchanged on every retry. */
export const newTurnId = () => `turn-${randomHex(10)}`;
/** A traceparent with a fresh trace id, so each gateway call is its own trace. */
export const traceparent = () => `00-${randomHex(16)}-${randomHex(8)}-01`;
