// One todo. Forms can only POST, so a form sends done=true|false to toggle it or
// _method=delete to delete it; JSON callers may use PATCH and DELETE directly.
import { todoDelete, todoUpdate } from "../../../../lib/backend";
import { readBody, respond } from "../../../../lib/http";

export const dynamic = "force-dynamic";

function changesFrom(body) {
  const changes = {};
  if (body.done !== undefined) changes.done = body.done === true || body.done === "true";
  if (typeof body.title === "string") changes.title = body.title;
  return changes;
}

export async function POST(request, { params }) {
  const { id } = await params;
  const body = await readBody(request);
  if (String(body._method).toLowerCase() === "delete") return respond(request, () => todoDelete(id));
  return respond(request, () => todoUpdate(id, changesFrom(body)));
}

export async function PATCH(request, { params }) {
  const { id } = await params;
  const body = await readBody(request);
  return respond(request, () => todoUpdate(id, changesFrom(body)), { json: true });
}

export async function DELETE(request, { params }) {
  const { id } = await params;
  return respond(request, () => todoDelete(id), { json: true });
}
