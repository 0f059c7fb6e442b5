// Shared by the route handlers: HTML forms get a 303 back to `/` (post/redirect/get),
// JSON callers get the backend's answer.
import { BackendError } from "./backend";

export function wantsJson(request) {
  return (request.headers.get("content-type") || "").includes("application/json");
}

export async function readBody(request) {
  if (wantsJson(request)) return (await request.json().catch(() => ({}))) || {};
  return Object.fromEntries(await request.formData().catch(() => new FormData()));
}

export function seeOther(error) {
  const location = error ? `/?error=${encodeURIComponent(error)}` : "/";
  return new Response(null, { status: 303, headers: { location } });
}

export async function respond(request, action, { status = 200, json = wantsJson(request) } = {}) {
  try {
    const data = await action();
    if (!json) return seeOther();
    return data === null ? new Response(null, { status: 204 }) : Response.json(data, { status });
  } catch (error) {
    if (!(error instanceof BackendError)) throw error;
    if (!json) return seeOther(error.message);
    return Response.json({ detail: error.message }, { status: error.status >= 500 ? 502 : error.status });
  }
}
