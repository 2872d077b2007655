// Tool calls: each function call is run once through the gateway, whatever duplicates the data
// channel delivers, and its output goes back as a function_call_output. Once a response is done
// and all its calls are answered, one response.create asks the model to speak, unless every
// call was wait_for_user, which means: say nothing until the user speaks again. An output the
// closed channel could not take is marked undelivered (failed, not sent), never Done.

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
    /** @type {Map<string, {done: boolean, followed: boolean, calls: ToolCall[]}>} */
    this.responses = new Map();
  }

  /** A call is running or its output not yet sent. */
  get busy() {
    return [...this.calls.values()].some((c) => c.status === 'running');
  }

  /** @param {RealtimeEvent} e a server event */
  handle(e) {
    const item = e.item;
    if (e.type === 'response.function_call_arguments.done') this.#start(e.call_id, e.name, e.response_id, e.arguments);
    else if (e.type === 'response.output_item.done' && item?.type === 'function_call') this.#start(item.call_id, item.name, e.response_id, item.arguments);
    else if (e.type === 'response.done') {
      const id = e.response.id;
      for (const i of e.response.output ?? []) if (i.type === 'function_call') this.#start(i.call_id, i.name, id, i.arguments);
      this.#response(id).done = true;
      this.#followUp(id);
    }
  }

  #response(id) {
    if (!this.responses.has(id)) this.responses.set(id, { done: false, followed: false, calls: [] });
    return /** @type {{done: boolean, followed: boolean, calls: ToolCall[]}} */ (this.responses.get(id));
  }

  async #start(callId, name, responseId, argumentsText) {
    if (!callId || this.calls.has(callId)) return;
    /** @type {ToolCall} */
    const call = {
      callId, name, responseId, argumentsText: argumentsText ?? '', arguments: parseArguments(argumentsText),
      status: 'running', startedAt: this.now(), ms: null, output: null, sent: false,
    };
    this.calls.set(callId, call);
    this.#response(responseId).calls.push(call);
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
