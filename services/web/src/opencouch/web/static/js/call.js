// One WebRTC call to Realtime (OpenAI or the emulator): the mic up, the assistant's audio down,
// JSON events both ways on the "oai-events" data channel. The offer goes to the gateway's
// realtime_calls_url with the ephemeral client secret as bearer.

import { ApiError } from './api.js';

/** The whole connect (offer, answer, data channel open) has this long. */
export const CONNECT_TIMEOUT_MS = 20000;

export class RealtimeCall {
  /**
   * @param {{url: string, secret: string, mic: MediaStream, audio: HTMLAudioElement,
   *   onEvent: (e: RealtimeEvent) => void, onSent: (e: RealtimeEvent) => void, onEnd: (reason: string) => void}} options
   */
  constructor(options) {
    this.options = options;
    this.pc = new RTCPeerConnection();
    this.channel = this.pc.createDataChannel('oai-events');
    this.callId = '';
    this.ended = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.dropTimer = undefined;
  }

  /**
   * Offer, answer, and the data channel open, within CONNECT_TIMEOUT_MS; rejects with an
   * ApiError, the call closed. The mic is the conversation's: it stops it on a failed connect.
   */
  async connect() {
    const aborter = new AbortController();
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => {
        aborter.abort();
        reject(new ApiError('realtime_timeout', 'The voice connection took too long to open. Please try again.', 0));
      }, CONNECT_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.#negotiate(aborter.signal), late]);
    } catch (error) {
      this.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** @param {AbortSignal} signal aborts the SDP exchange */
  async #negotiate(signal) {
    const { pc, channel, options } = this;
    const fail = (code, message, status = 0) => new ApiError(code, message, status);
    for (const track of options.mic.getAudioTracks()) pc.addTrack(track, options.mic);
    pc.ontrack = (e) => (options.audio.srcObject = e.streams[0] ?? new MediaStream([e.track]));
    channel.onmessage = (message) => {
      try {
        const event = JSON.parse(message.data);
        if (typeof event?.type === 'string') options.onEvent(event);
      } catch {
        // Not an event: ignored.
      }
    };
    channel.onclose = () => this.#end('channel_closed');
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      clearTimeout(this.dropTimer);
      if (state === 'failed' || state === 'closed') this.#end(`connection_${state}`);
      // ICE may come back from "disconnected"; after 4 s the call counts as dropped.
      if (state === 'disconnected') this.dropTimer = setTimeout(() => this.#end('connection_dropped'), 4000);
    };
    const opened = new Promise((resolve) => (channel.onopen = resolve));
    await pc.setLocalDescription(await pc.createOffer());
    const response = await fetch(options.url, {
      method: 'POST', body: pc.localDescription?.sdp, credentials: 'omit', signal,
      headers: { Authorization: `Bearer ${options.secret}`, 'Content-Type': 'application/sdp' },
    }).catch(() => null);
    if (!response) throw fail('realtime_unreachable', 'Could not reach the voice service. Check your connection and try again.');
    if (!response.ok) throw fail('realtime_refused', `The voice service refused the call (HTTP ${response.status}). Please try again.`, response.status);
    this.callId = (response.headers.get('Location') ?? '').split('/').pop() ?? '';
    await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
    await opened;
  }

  /** Send a client event; false when the channel is not open. @param {RealtimeEvent} event */
  send(event) {
    if (this.channel.readyState !== 'open') return false;
    this.channel.send(JSON.stringify(event));
    this.options.onSent(event);
    return true;
  }

  /** Hang up (the mic stays open for the conversation); safe to call again. */
  close() {
    this.ended = true;
    clearTimeout(this.dropTimer);
    this.channel.close();
    this.pc.close();
  }

  #end(reason) {
    if (this.ended) return;
    this.close();
    this.options.onEnd(reason);
  }
}
