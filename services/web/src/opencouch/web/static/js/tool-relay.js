// Tool calls: each function call is run once through the gateway, whatever duplicates the data
// channel delivers, and its output goes back as a function_call_output. A call runs only once
// its response.done says completed: the arguments' .done comes for a response the person cut
// off too, and its calls (a memory deletion they just said no to) must not run. Such a call gets
// an `interrupted` output instead, so the model knows it did not run, and nothing is asked of
// the model. Once a completed response's calls are all answered, one response.create asks the
// model to speak, unless every call was wait_for_user, which means: say nothing until the user
// speaks again. An output the closed channel could not take is marked undelivered (failed, not
// sent), never Done.

export const SILENT_TOOLS = new Set(['wait_for_user']);

/** Arguments as an object; null when the model sent something that is not a JSON object. */
export function parseArguments(text) {
  try {
    const value = text?.trim() ? JSON.parse(text) : {};
    return value && typeof value === 'object' && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** An output in the gateway's error shape, for a call that could not reach it; the model can speak around it. */
export const localError = (code, message) => ({ status: 'error', error: { code, message } });

/**
 * A response's calls: `waiting` until its response.done, which says whether they run (`completed`).
 * @typedef {{done: boolean, completed: boolean, followed: boolean, waiting: Map<string, ToolCall>, calls: ToolCall[]}} RelayedResponse
 */

export class ToolRelay {
  /**
   * @param {{run: (call: ToolCall) => Promise<ToolResult>, send: (e: RealtimeEvent) => boolean,
   *   now?: () => number, onUpdate?: (call: ToolCall) => void, onSettled?: () => void}} deps
   *   `send` says whether the event went out; `onSettled` follows each call's end (after its response.create)
   */
  constructor(deps) {
    this.run = deps.run;
    this.send = deps.send;
    this.now = deps.now ?? Date.now;
    this.onUpdate = deps.onUpdate ?? (() => {});
    this.onSettled = deps.onSettled ?? (() => {});
    /** @type {Map<string, ToolCall>} */
    this.calls = new Map();
    /** @type {Map<string, RelayedResponse>} */
    this.responses = new Map();
  }

  /** A call is running or its output not yet sent. */
  get busy() {
    return [...this.calls.values()].some((c) => c.status === 'running');
  }

  /** @param {RealtimeEvent} e a server event */
  handle(e) {
    const item = e.item;
    if (e.type === 'response.function_call_arguments.done') this.#called(e.response_id, e.call_id, e.name, e.arguments);
    else if (e.type === 'response.output_item.done' && item?.type === 'function_call') this.#called(e.response_id, item.call_id, item.name, item.arguments);
    else if (e.type === 'response.done') {
      const id = e.response.id;
      for (const i of e.response.output ?? []) if (i.type === 'function_call') this.#called(id, i.call_id, i.name, i.arguments);
      const r = this.#response(id);
      if (r.done) return; // a duplicate: its calls were decided by the first
      // Cut off (cancelled by a barge-in, incomplete, failed): nothing of it runs or is followed.
      Object.assign(r, { done: true, completed: e.response.status === 'completed', followed: e.response.status !== 'completed' });
      for (const call of r.waiting.values()) this.#decide(r, call);
      r.waiting.clear();
      this.#followUp(id);
    }
  }

  /** @returns {RelayedResponse} */
  #response(id) {
    if (!this.responses.has(id)) this.responses.set(id, { done: false, completed: false, followed: false, waiting: new Map(), calls: [] });
    return /** @type {RelayedResponse} */ (this.responses.get(id));
  }

  /** A call the model made: it waits for its response's end, which decides whether it runs. */
  #called(responseId, callId, name, argumentsText) {
    const r = this.#response(responseId);
    if (!callId || this.calls.has(callId) || r.waiting.has(callId)) return;
    /** @type {ToolCall} */
    const call = {
      callId, name, responseId, argumentsText: argumentsText ?? '', arguments: parseArguments(argumentsText),
      status: 'running', startedAt: this.now(), ms: null, output: null, sent: false,
    };
    if (r.done) this.#decide(r, call);
    else r.waiting.set(callId, call);
  }

  /** @param {RelayedResponse} r @param {ToolCall} call */
  #decide(r, call) {
    this.calls.set(call.callId, call);
    r.calls.push(call);
    if (r.completed) void this.#start(call);
    else this.#skip(call);
  }

  /**
   * A call of a response that did not complete: never run. Its output says so, for the model's
   * context; the call shows as not run, never Done. @param {ToolCall} call
   */
  #skip(call) {
    const output = localError('interrupted', `${call.name} did not run: the response asking for it was interrupted.`);
    const sent = this.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: call.callId, output: JSON.stringify(output) } });
    Object.assign(call, { output, status: 'skipped', sent });
    this.onUpdate(call);
    this.onSettled();
  }

  /** @param {ToolCall} call */
  async #start(call) {
    const { callId, name, responseId } = call;
    call.startedAt = this.now();
    this.onUpdate(call);
    /** @type {ToolResult} */
    let result = { ok: false, output: localError('invalid_arguments', 'The arguments were not a JSON object.') };
    if (call.arguments) {
      try {
        result = await this.run(call);
      } catch {
        result = { ok: false, output: localError('tool_unavailable', `${name} could not be reached.`) };
      }
    }
    const sent = this.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: callId, output: JSON.stringify(result.output) } });
    // Not sent (the call closed): the model never had it, so it is no Done, whatever the tool did.
    Object.assign(call, { output: result.output, status: result.ok && sent ? 'done' : 'failed', ms: this.now() - call.startedAt, sent });
    this.onUpdate(call);
    this.#followUp(responseId);
    this.onSettled();
  }

  #followUp(id) {
    const r = this.#response(id);
    if (!r.done || r.followed || r.calls.some((c) => !c.sent)) return;
    r.followed = true;
    if (r.calls.some((c) => !SILENT_TOOLS.has(c.name))) this.send({ type: 'response.create' });
  }
}
