// Plain words and safe values for what the pages show; no DOM here.

const str = (value) => (typeof value === 'string' ? value : '');

/** An http(s) URL, else '' (no javascript: links from tool output). */
export function safeUrl(value) {
  try {
    const url = new URL(String(value));
    return /^https?:$/.test(url.protocol) ? url.href : '';
  } catch {
    return '';
  }
}

/** A resource's region as a person reads it: "CA" is Canada, "INTL" international. */
export function regionName(value) {
  const region = str(value);
  if (region === 'INTL') return 'International';
  if (!/^[A-Z]{2}$/.test(region)) return region;
  try {
    return new Intl.DisplayNames(['en'], { type: 'region' }).of(region) ?? region;
  } catch {
    return region;
  }
}

/**
 * Crisis lines to show as cards, only from a lookup_crisis_resources output: the page never
 * shows a line the verified lookup did not return.
 * @param {string} toolName @param {Record<string, any> | null} output
 */
export function crisisCards(toolName, output) {
  if (toolName !== 'lookup_crisis_resources' || !Array.isArray(output?.resources)) return [];
  return output.resources.slice(0, 5).filter((r) => typeof r?.name === 'string').map((r) => ({
    name: r.name, region: regionName(r.region), phone: str(r.phone), sms: str(r.text), hours: str(r.hours), url: safeUrl(r.url),
    phoneHref: r.phone ? `tel:${String(r.phone).replace(/[^0-9+]/g, '')}` : '',
  }));
}

/** @type {Record<string, string>} */
const FINALIZATION_LABELS = {
  idle: 'Not ended yet', in_progress: 'Summarising…', completed: 'Saved and summarised',
  failed: 'Could not be summarised', not_kept: 'Nothing was kept', erased: 'Erased',
};

/** The card's heading: what was asked (`saved`, known to this page only) and what came of it. */
function finalizationLabel(status, reply) {
  if (reply?.saved === false && status === 'in_progress') return 'Ending without saving…';
  if (reply?.saved === false && status === 'completed') return 'Ended without saving';
  if (status === 'completed' && !str(reply?.summary)) return 'Saved'; // too short for a summary
  return FINALIZATION_LABELS[status];
}

/**
 * The line under the heading, in the person's terms. The reply's own `detail` is written for
 * operators and the API ("Finalized 2 turns… substantive user turns", "ask again shortly", the
 * peak crisis level's coverage): the developer page shows it, this card never does.
 * A `problem` is the page's own words for an end that never reached the gateway.
 */
function finalizationNote(status, reply) {
  if (str(reply?.problem)) return reply.problem;
  const unsaved = reply?.saved === false;
  switch (status) {
    case 'erased':
      return 'Everything kept for you was erased, summaries included.';
    case 'not_kept':
      return 'Incognito: nothing from this conversation was kept.';
    case 'in_progress':
      return unsaved ? 'Closing the session; nothing new will be kept.' : 'Writing a short summary of this conversation. This can take a moment.';
    case 'completed': {
      if (unsaved) return 'No summary and no new memories were kept.';
      const said = str(reply?.summary) ? '' : 'What you said is saved. The conversation was too short to summarise.';
      return [said, memoriesKept(reply?.memories_committed)].filter(Boolean).join(' ');
    }
    case 'failed':
      return 'Something went wrong while finishing this conversation, so it was not summarised.';
    default:
      return '';
  }
}

/** What the session added to the person's memory, said only when it added something. */
function memoriesKept(count) {
  const kept = Number.isInteger(count) && count > 0 ? count : 0;
  if (!kept) return '';
  return kept === 1 ? 'One new thing to remember was kept for next time.' : `${kept} new things to remember were kept for next time.`;
}

/**
 * The finalization card (idle, in_progress, completed, failed, not_kept for incognito, or
 * erased once everything kept was erased).
 * @param {Record<string, any> | null} reply an EndReply with `saved` (what the person chose);
 *   null before the session ends; `{erased: true}` after an erasure; `{status: 'failed',
 *   problem}` when the end could not be asked for
 */
export function finalizationCard(reply) {
  const status = !reply
    ? 'idle'
    : reply.erased
      ? 'erased'
      : ['completed', 'failed'].includes(reply.status)
        ? reply.status
        : reply.status === null
          ? 'not_kept'
          : 'in_progress';
  const moods = [reply?.mood_opened, reply?.mood_closed].filter(Boolean).join(' → ');
  return {
    status, label: finalizationLabel(status, reply), note: finalizationNote(status, reply), summary: str(reply?.summary),
    themes: Array.isArray(reply?.themes) ? reply.themes.map(String) : [], moods,
  };
}

/** Why the microphone could not be opened, in words a person can act on. */
export function micProblem(error) {
  const name = String(error?.name ?? '');
  if (/NotAllowed|PermissionDenied/.test(name)) {
    return 'Microphone access is blocked for this site. Allow it in your browser’s site settings (often the icon beside the address), then press Connect again.';
  }
  if (/NotFound|DevicesNotFound/.test(name)) return 'No microphone was found. Plug one in or switch it on, then press Connect again.';
  if (/NotReadable|TrackStart/.test(name)) return 'Your microphone is busy or not responding. Close other apps or tabs using it, then try again.';
  if (/Security|NoSecureContext/.test(name)) return 'The microphone only works on a secure (https) page. Open this page over https.';
  return 'The microphone could not be started. Check that one is connected and allowed, then try again.';
}

/** @type {Record<string, string>} */
export const CONNECTION_LABELS = {
  idle: 'Not connected', connecting: 'Connecting…', connected: 'Connected: speak whenever you are ready',
  reconnecting: 'Reconnecting: the conversation will carry on', ending: 'Ending the session…',
  ended: 'Session ended', disconnected: 'Disconnected', end_failed: 'Not ended yet: the service did not answer',
};

/** What the call bar says: the connection, and a muted microphone while it is connected. */
export function connectionLabel(state, muted) {
  if (muted && state === 'connected') return 'Connected: microphone muted, type below or unmute to speak';
  return CONNECTION_LABELS[state] ?? state;
}

/**
 * An output the call could not take (it had closed) is "Not delivered": the model never heard it.
 * A call of a response the person cut off is "Not run". @param {ToolCall} call
 */
export const toolStatus = (call) =>
  call.status === 'failed' && !call.sent ? 'Not delivered' : { running: 'Running', done: 'Done', failed: 'Failed', skipped: 'Not run' }[call.status];

/**
 * What the person can do in a connection state, on both pages: set up and connect between
 * calls (`idle`); end the conversation while one is on, or lost for good (`disconnected`): its
 * session is still to end, with their choice. So is one whose End never reached the gateway
 * (`end_failed`): the person may press End again, or start another conversation (which ends
 * that session as they chose). @param {string} state
 */
export const controlsFor = (state) => ({
  idle: ['idle', 'ended', 'disconnected', 'end_failed'].includes(state),
  endable: ['connected', 'reconnecting', 'disconnected', 'end_failed'].includes(state),
});

/** @param {number | null} ms */
export const duration = (ms) => (ms === null ? '…' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

/** A call's round trip; none for one that never ran (not "…", which says it still runs). @param {ToolCall} call */
export const toolTime = (call) => (call.status === 'skipped' ? '—' : duration(call.ms));
