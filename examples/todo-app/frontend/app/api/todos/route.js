// GET: the backend's list as JSON. POST (form or JSON {title}): add a todo.
import { todoCreate, todoList } from "../../../lib/backend";
import { readBody, respond, seeOther, wantsJson } from "../../../lib/http";

export const dynamic = "force-dynamic";

export async function GET(request) {
  return respond(request, todoList, { json: true });
}

export async function POST(request) {
  const body = await readBody(request);
  const title = typeof body.title === "string" ? body.title.trim() : "";
  if (!title) {
    return wantsJson(request) ? Response.json({ detail: "title is required" }, { status: 422 }) : seeOther("blank");
  }
  return respond(request, () => todoCreate(title), { status: 201 });
}
