// Page configuration, served by the web service from its settings (see /config.json).

import { ApiError } from './api.js';

/**
 * Load where this page finds the voice API.
 * @returns {Promise<{apiBaseUrl: string}>}
 */
export async function loadConfig() {
  let response;
  try {
    response = await fetch('/config.json', { cache: 'no-store', credentials: 'same-origin' });
  } catch {
    throw new ApiError('config_unavailable', 'This page could not load its settings. Please reload.', 0);
  }
  if (!response.ok) {
    throw new ApiError('config_unavailable', 'This page could not load its settings. Please reload.', response.status);
  }
  const body = await response.json();
  if (typeof body.api_base_url !== 'string' || body.api_base_url === '') {
    throw new ApiError('config_invalid', 'This page was set up without a voice service address.', 0);
  }
  // The base never ends in "/" so paths can be appended as they are written.
  return { apiBaseUrl: body.api_base_url.replace(/\/+$/, '') };
}
