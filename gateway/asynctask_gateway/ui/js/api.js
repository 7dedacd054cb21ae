// The gateway's API from the page: the bearer token from sessionStorage in the Authorization
// header (never in a URL), RFC 9457 problems turned into readable errors, and server-sent
// events read with fetch() and a stream reader (EventSource cannot send a header).

const TOKEN_KEY = "asynctask.token";

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An error answer of the API, with a sentence a person can read. */
export class ApiError extends Error {
  constructor(status, problem) {
    const title = problem.title || `HTTP ${status}`;
    const detail = problem.detail || "";
    super(detail ? `${title} (${status}): ${detail}` : `${title} (${status})`);
    this.status = status;
    this.problem = problem;
  }

  get hint() {
    if (this.status === 401) return "Paste a valid token above (it is kept for this tab only).";
    if (this.status === 403) return "This token has no access to that here; ask for a Role that grants it (the message names the verb and resource).";
    return "";
  }
}

function headers(extra) {
  const all = { Accept: "application/json", ...extra };
  const token = getToken();
  if (token) all.Authorization = `Bearer ${token}`;
  return all;
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText, detail: "" };
  }
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, headers: headers(), signal, credentials: "omit", cache: "no-store",
                 referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response.status === 204 ? null : response.json();
}

/** A GET's body as a Blob (a stored result, through the gateway); ApiError when refused. */
export async function fetchBlob(path, { signal } = {}) {
  const response = await fetch(path, { headers: headers({ Accept: "*/*" }), signal,
                                       credentials: "omit", cache: "no-store",
                                       referrerPolicy: "no-referrer" });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response.blob();
}

/** Splits a text/event-stream into events; feed it decoded text, it calls onEvent. */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.event = { id: null, event: "message", data: [] };
  }

  push(text) {
    this.buffer += text;
    let end;
    while ((end = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, end);
      const sep = this.buffer.startsWith("\r\n", end) ? 2 : 1;
      this.buffer = this.buffer.slice(end + sep);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      if (this.event.data.length) {
        this.onEvent({ id: this.event.id, event: this.event.event,
                       data: this.event.data.join("\n") });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;  // a keepalive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") this.event.id = value;
    else if (field === "event") this.event.event = value;
    else if (field === "data") this.event.data.push(value);
  }
}

/**
 * Reads one SSE stream until it ends; onEvent({id, event, data}) for each event.
 * Resolves with the HTTP status when the server closes it (204: nothing more will come);
 * rejects with ApiError when refused, or with the fetch error when the connection breaks.
 */
export async function readStream(path, { onEvent, lastEventId, signal }) {
  const extra = { Accept: "text/event-stream" };
  if (lastEventId) extra["Last-Event-ID"] = lastEventId;
  const response = await fetch(path, { headers: headers(extra), signal, credentials: "omit",
                                       cache: "no-store", referrerPolicy: "no-referrer" });
  if (response.status === 204) return 204;
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser(onEvent);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return response.status;
    parser.push(value);
  }
}

export function tasksPath(namespace, name, suffix = "") {
  const base = `/v1/namespaces/${encodeURIComponent(namespace)}/tasks`;
  return name ? `${base}/${encodeURIComponent(name)}${suffix}` : `${base}${suffix}`;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) search.set(key, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}
