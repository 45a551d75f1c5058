"""The HTTP API of `genedit serve` (FastAPI): search, edits, journal and rollback over one `LiveIndex`.

Writes (POST/PUT/DELETE /documents, POST /rollback) need `Authorization: Bearer <token>` when the server has a
token (401 without one, 403 with a wrong one). Refused input gets one clear message in `{"detail": "..."}`:
422 malformed or empty, 404 unknown document id, 409 id already indexed or another writer's conflict; 503 when the
edit worker died during the write (it may or may not have landed: /log says; a new worker takes the next write).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
from collections.abc import Callable

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from genedit import __version__
from genedit.data.types import Document
from genedit.model.storage import WriteConflict
from genedit.serve.index import EditResult, LiveIndex, RequestError
from genedit.serve.worker import WorkerDied


class SearchRequest(BaseModel):
    """POST /search."""

    model_config = ConfigDict(extra="forbid")
    queries: list[str] = Field(min_length=1)
    k: int = 10


class Hit(BaseModel):
    """One ranked document."""

    id: str
    score: float


class SearchResponse(BaseModel):
    """The version that answered and one ranking per query."""

    version: str | None
    results: list[list[Hit]]


class DocumentIn(BaseModel):
    """A BEIR corpus line."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    id: str = Field(alias="_id", min_length=1)
    title: str = ""
    text: str = ""


class DocumentsRequest(BaseModel):
    """POST / PUT /documents: documents, optional queries per document id, optional editing method."""

    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn] = Field(min_length=1)
    queries: dict[str, list[str]] | None = None
    method: str | None = None


class DeleteRequest(BaseModel):
    """DELETE /documents."""

    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(min_length=1)
    method: str | None = None


class RollbackRequest(BaseModel):
    """POST /rollback."""

    model_config = ConfigDict(extra="forbid")
    to: int


class EditResponse(BaseModel):
    """An acknowledged write: its journal entry and the durable version that now answers queries."""

    entry: int
    version: str | None
    undone: list[int] = []


def _one_line(exc: RequestValidationError) -> str:
    """The first validation error as one line ('body.documents.0.text: Input should be a valid string')."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"malformed JSON: {first.get('ctx', {}).get('error', first.get('msg'))}"
    where = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def create_app(index: LiveIndex, token: str | None = None) -> FastAPI:
    """The FastAPI application serving `index`; `token` guards the write endpoints."""
    app = FastAPI(title="genedit serve", version=__version__,
                  description="A live GenIR index: search while documents are added, updated and deleted.")

    def writer(request: Request) -> None:
        if token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise RequestError(401, "this server needs 'Authorization: Bearer <token>' for writes")
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise RequestError(403, "wrong token")

    @app.exception_handler(RequestError)
    async def _refused(request: Request, exc: RequestError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(WriteConflict)
    async def _conflict(request: Request, exc: WriteConflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(WorkerDied)
    async def _worker_died(request: Request, exc: WorkerDied) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=422)

    async def _write(submit: Callable[[], concurrent.futures.Future[EditResult]]) -> EditResponse:
        """Queue a write on the index's writer thread and await it without holding a request thread."""
        result = await asyncio.wrap_future(submit())
        return EditResponse(entry=result.entry, version=result.version, undone=result.undone)

    @app.get("/health")
    def health() -> dict:
        """Liveness and the version being served."""
        snap = index.snapshot
        return {"status": "ok", "version": snap.version, "n_docs": snap.n_docs, "fingerprint": snap.fingerprint,
                "mode": "read-only" if index.read_only else "writer", "genedit": __version__}

    @app.post("/search", response_model=SearchResponse)
    def search(body: SearchRequest) -> SearchResponse:
        """Top-k documents per query, all answered by one version."""
        snap, results = index.search(body.queries, body.k)
        return SearchResponse(version=snap.version, results=[[Hit(id=d, score=s) for d, s in r] for r in results])

    @app.post("/documents", response_model=EditResponse, dependencies=[Depends(writer)])
    async def add(body: DocumentsRequest) -> EditResponse:
        """Index new documents; answered once the new version is durable and served."""
        docs = [Document(d.id, d.title, d.text) for d in body.documents]
        return await _write(lambda: index.add(docs, body.queries, body.method))

    @app.put("/documents", response_model=EditResponse, dependencies=[Depends(writer)])
    async def update(body: DocumentsRequest) -> EditResponse:
        """Give indexed documents new text; answered once the new version is durable and served."""
        docs = [Document(d.id, d.title, d.text) for d in body.documents]
        return await _write(lambda: index.update(docs, body.queries, body.method))

    @app.delete("/documents", response_model=EditResponse, dependencies=[Depends(writer)])
    async def delete(body: DeleteRequest) -> EditResponse:
        """Remove documents; no query that starts after the answer returns them."""
        return await _write(lambda: index.delete(body.ids, body.method))

    @app.get("/log")
    def journal() -> dict:
        """The served version's edit journal (metadata), oldest first."""
        snap = index.snapshot
        return {"version": snap.version, "base_fingerprint": snap.base_fingerprint, "fingerprint": snap.fingerprint, "entries": snap.entries}

    @app.post("/rollback", response_model=EditResponse, dependencies=[Depends(writer)])
    async def rollback(body: RollbackRequest) -> EditResponse:
        """Undo every edit after journal entry `to` (0 = the base model), bit for bit, durably."""
        return await _write(lambda: index.rollback(body.to))

    return app
