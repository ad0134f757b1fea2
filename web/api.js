// Every request goes through `api`: it sends the session's API key, and on 401 asks for one and retries.
const KEY = 'reel.apiKey';
let askForKey = null;

export const apiKey = () => sessionStorage.getItem(KEY) || '';
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}
/** `ask` returns a promise of the key the user typed. */
export function onKeyNeeded(ask) { askForKey = ask; }

export class APIError extends Error {
  constructor(status, body) {
    const detail = body && body.error ? body.error : {};
    super(detail.message || `HTTP ${status}`);
    this.status = status;
    this.field = detail.field || null;
    this.body = body;
  }
}

export async function api(path, { method = 'GET', body, type, raw = false } = {}) {
  for (;;) {
    const headers = {};
    if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
    if (body !== undefined) headers['Content-Type'] = type || 'application/json';
    // A string or a Blob (a File: an image's bytes) is sent as it is; anything else as JSON.
    const asIs = body === undefined || typeof body === 'string' || body instanceof Blob;
    const payload = asIs ? body : JSON.stringify(body);
    const response = await fetch(path, { method, headers, body: payload });
    if (response.status === 401 && askForKey) {
      setApiKey(await askForKey());
      continue;
    }
    if (raw) return response;
    const text = await response.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    if (!response.ok) throw new APIError(response.status, json);
    return json;
  }
}

/** A URL a <video> or <a> can use: the path itself without a key, a blob fetched with the key otherwise. */
export async function mediaURL(path) {
  if (!apiKey()) return path;
  const response = await api(path, { raw: true });
  if (!response.ok) throw new APIError(response.status, null);
  return URL.createObjectURL(await response.blob());
}
