"""The todo API: CRUD on /todos, the liveness probe /health and the readiness probe /ready.

Run: uvicorn src.main:app --host 0.0.0.0 --port 8000
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

from fastapi import FastAPI, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StringConstraints

from .config import Settings
from .db import Database, DatabaseUnavailable

log = logging.getLogger("todo")

TodoId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class TodoIn(BaseModel):
    title: Title


class TodoPatch(BaseModel):
    title: Title | None = None
    done: bool | None = None


class Todo(BaseModel):
    id: int
    title: str
    done: bool
    created_at: datetime


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("todo").setLevel(settings.logging_level)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    db = Database(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("todo-backend starting: %s", settings.describe())
        try:
            db.ensure_schema()
        except DatabaseUnavailable as error:
            # Stay up: /health answers, /ready reports the reason, the table is made on
            # the first request once the database answers.
            log.warning("table not created at startup: %s", error)
        yield

    app = FastAPI(title="todo-backend", version="1.0.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.db = db

    @app.exception_handler(DatabaseUnavailable)
    async def database_unavailable(request: Request, error: DatabaseUnavailable) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, error)
        return JSONResponse({"detail": str(error)}, status_code=503)

    @app.get("/")
    def index() -> dict[str, str]:
        return {"service": "todo-backend", "environment": settings.environment}

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers. No dependency is checked here."""
        return {"status": "healthy"}

    @app.get("/ready")
    def ready() -> JSONResponse:
        """Readiness: SELECT 1 on DATABASE_URL; 503 with the reason when that fails."""
        try:
            db.ping()
        except DatabaseUnavailable as error:
            log.warning("not ready: %s", error)
            return JSONResponse(
                {"status": "not ready", "database": "unavailable", "reason": str(error)},
                status_code=503,
            )
        return JSONResponse({"status": "ready", "database": "connected"})

    @app.get("/todos", response_model=list[Todo])
    def todos_list() -> list[dict]:
        return db.todo_list()

    @app.post("/todos", response_model=Todo, status_code=201)
    def todos_create(body: TodoIn) -> dict:
        return db.todo_create(title=body.title)

    @app.patch("/todos/{todo_id}", response_model=Todo)
    def todos_update(todo_id: TodoId, body: TodoPatch) -> dict:
        todo = db.todo_update(todo_id, title=body.title, done=body.done)
        if todo is None:
            raise HTTPException(status_code=404, detail=f"todo {todo_id} not found")
        return todo

    @app.delete("/todos/{todo_id}", status_code=204)
    def todos_delete(todo_id: TodoId) -> Response:
        if not db.todo_delete(todo_id):
            raise HTTPException(status_code=404, detail=f"todo {todo_id} not found")
        return Response(status_code=204)

    return app


app = create_app()
