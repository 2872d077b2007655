// Entry point of /voice/realtime-dev: POST /session and show the raw reply, secret redacted.

import { ApiError, VoiceApi, withoutSecretValue } from './api.js';
import { loadConfig } from './config.js';
import { bindSessionForm } from './session-form.js';

function show(value) {
  document.getElementById('raw-reply').textContent = JSON.stringify(value, null, 2);
}

function main() {
  const form = document.getElementById('session-form');
  const status = document.getElementById('status');
  const config = loadConfig();
  config.catch(() => {});

  bindSessionForm(form, async (request) => {
    status.textContent = 'Requesting…';
    try {
      const api = new VoiceApi((await config).apiBaseUrl);
      const reply = await api.createSession(request);
      show(withoutSecretValue(reply));
      status.textContent = 'Session created.';
    } catch (error) {
      const apiError = error instanceof ApiError ? error : new ApiError('unexpected', String(error), 0);
      show({ status: apiError.status, error: { code: apiError.code, message: apiError.message } });
      status.textContent = 'Request failed.';
    }
  });
}

main();
