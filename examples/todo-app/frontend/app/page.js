// The todo list, rendered on the server on every request. It answers 200 even when the
// backend is down (empty state plus the reason), so the frontend's own probes on `/`
// track the Next server, not the backend. Forms post to route handlers (app/api/todos),
// which work without client JavaScript.
import { todoList } from "../lib/backend";

export const dynamic = "force-dynamic";

const MESSAGES = { blank: "A todo needs a title." };

export default async function Home({ searchParams }) {
  const params = await searchParams;
  let todos = [];
  let error = null;
  try {
    todos = await todoList();
  } catch (e) {
    error = e.message;
  }
  const flash = params?.error ? MESSAGES[params.error] || String(params.error) : null;

  return (
    <main>
      <h1>Todos</h1>
      {flash && <p className="error" role="alert">{flash}</p>}
      <form className="add" method="post" action="/api/todos">
        <input name="title" aria-label="New todo" placeholder="What needs doing?" maxLength={200} required />
        <button type="submit">Add</button>
      </form>
      {error ? (
        <p className="error" role="alert" data-testid="backend-error">
          Could not load todos: {error}
        </p>
      ) : todos.length === 0 ? (
        <p className="empty">Nothing to do yet.</p>
      ) : (
        <ul className="todos">
          {todos.map((todo) => (
            <li key={todo.id} className={todo.done ? "done" : undefined} data-todo-id={todo.id}>
              <form method="post" action={`/api/todos/${todo.id}`}>
                <input type="hidden" name="done" value={todo.done ? "false" : "true"} />
                <button type="submit" aria-label={todo.done ? "Mark not done" : "Mark done"}>
                  {todo.done ? "☑" : "☐"}
                </button>
              </form>
              <span className="title">{todo.title}</span>
              <form method="post" action={`/api/todos/${todo.id}`}>
                <input type="hidden" name="_method" value="delete" />
                <button type="submit" aria-label="Delete">✕</button>
              </form>
            </li>
          ))}
        </ul>
      )}
      <footer>{process.env.ENVIRONMENT || "development"}</footer>
    </main>
  );
}
