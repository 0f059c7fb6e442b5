import psycopg


def test_it_creates_the_table_at_startup(client, database_url):
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('todos') IS NOT NULL").fetchone() == (True,)


def test_it_starts_with_no_todos(client):
    response = client.get("/todos")
    assert response.status_code == 200
    assert response.json() == []


def test_it_creates_and_lists_todos_in_order(client):
    first = client.post("/todos", json={"title": "  write the Dockerfile  "})
    second = client.post("/todos", json={"title": "deploy with helm"})
    assert first.status_code == second.status_code == 201
    assert first.json()["title"] == "write the Dockerfile"
    assert first.json()["done"] is False
    titles = [todo["title"] for todo in client.get("/todos").json()]
    assert titles == ["write the Dockerfile", "deploy with helm"]


def test_it_marks_a_todo_done_and_renames_it(client):
    todo = client.post("/todos", json={"title": "probe"}).json()
    done = client.patch(f"/todos/{todo['id']}", json={"done": True})
    assert done.status_code == 200
    assert done.json()["done"] is True
    assert done.json()["title"] == "probe"
    renamed = client.patch(f"/todos/{todo['id']}", json={"title": "readiness probe"})
    assert renamed.json() == {**done.json(), "title": "readiness probe"}


def test_it_deletes_a_todo(client):
    todo = client.post("/todos", json={"title": "temporary"}).json()
    assert client.delete(f"/todos/{todo['id']}").status_code == 204
    assert client.get("/todos").json() == []
    assert client.delete(f"/todos/{todo['id']}").status_code == 404


def test_it_returns_404_for_a_missing_todo(client):
    assert client.patch("/todos/999999", json={"done": True}).status_code == 404
    assert client.patch("/todos/99999999999999999999", json={"done": True}).status_code == 422


def test_it_rejects_blank_and_overlong_titles(client):
    assert client.post("/todos", json={"title": "   "}).status_code == 422
    assert client.post("/todos", json={"title": "x" * 201}).status_code == 422
    assert client.post("/todos", json={}).status_code == 422
    assert client.get("/todos").json() == []


def test_it_makes_the_table_once_the_database_comes_back(client, database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE todos")
    client.app.state.db._schema_ready = False
    assert client.post("/todos", json={"title": "again"}).status_code == 201
