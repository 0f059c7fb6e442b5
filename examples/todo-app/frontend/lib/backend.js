// Server-side client of the todo backend. Only the Next server talks to BACKEND_URL (a
// cluster-internal name like http://backend-service:8000 the browser cannot resolve);
// pages and route handlers call these functions, the browser never sees the URL.
import "server-only";

const TIMEOUT_MS = 2000; // under the readiness probe's 3s timeout on `/`

export function backendUrl() {
  return (process.env.BACKEND_URL || "http://backend-service:8000").replace(/\/+$/, "");
}

export class BackendError extends Error {
  constructor(message, status = 502) {
    super(message);
    this.status = status;
  }
}

// "fetch failed" says little: prefer the system error code (ECONNREFUSED, ENOTFOUND, ...).
function failureReason(error) {
  if (error?.name === "TimeoutError") return `no answer in ${TIMEOUT_MS} ms`;
  const cause = error?.cause;
  return cause?.code || cause?.errors?.[0]?.code || cause?.message || error?.message || String(error);
}

async function call(path, { method = "GET", body } = {}) {
  let response;
  try {
    response = await fetch(`${backendUrl()}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    throw new BackendError(`backend unreachable at ${backendUrl()}: ${failureReason(error)}`);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = typeof data?.detail === "string" ? data.detail : `HTTP ${response.status}`;
    throw new BackendError(`backend answered ${response.status}: ${detail}`, response.status);
  }
  return data;
}

export const todoList = () => call("/todos");
export const todoCreate = (title) => call("/todos", { method: "POST", body: { title } });
export const todoUpdate = (id, changes) => call(`/todos/${encodeURIComponent(id)}`, { method: "PATCH", body: changes });
export const todoDelete = (id) => call(`/todos/${encodeURIComponent(id)}`, { method: "DELETE" });
