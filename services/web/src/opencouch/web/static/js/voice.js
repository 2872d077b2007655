// Entry point of /voice: session setup now; the live WebRTC call plugs in later.
//
// Extension point: once a session is ready this page dispatches SESSION_READY (events.js) on
// `document`, with the full reply (client secret included) as `detail`. A later realtime.js
// listens for it to open the WebRTC call; it needs one import added here and nothing else.

import { ApiError, VoiceApi } from './api.js';
import { loadConfig } from './config.js';
import { SESSION_READY } from './events.js';
import { bindSessionForm } from './session-form.js';
import { SessionView } from './session-view.js';

function main() {
  const form = document.getElementById('session-form');
  const view = new SessionView(document);
  // Fetched once, at load; a failure is reported when the user starts a session.
  const config = loadConfig();
  config.catch(() => {});

  bindSessionForm(form, async (request) => {
    view.clearError();
    view.hideSession();
    view.showStatus('Starting your session…');
    try {
      const api = new VoiceApi((await config).apiBaseUrl);
      const reply = await api.createSession(request);
      view.showSession(reply);
      view.showStatus('Your session is ready.');
      document.getElementById('session-title').focus();
      document.dispatchEvent(new CustomEvent(SESSION_READY, { detail: reply }));
    } catch (error) {
      view.showError(
        error instanceof ApiError
          ? error
          : new ApiError('unexpected', 'Something went wrong on this page. Please reload and try again.', 0),
      );
    }
  });
}

main();
