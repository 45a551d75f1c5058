"""Serving a model folder live (`genedit serve`): search while edits land, durable acknowledged writes, one writer.

    from genedit.serve import LiveIndex, create_app
    index = LiveIndex("DIR", corpus=collection)        # takes the folder's writer lock for its life
    index.search(["a query"], k=10)                     # (snapshot, [[(id, score), ...]])
    index.add(docs).result()                            # EditResult(entry, version): durable and served
    app = create_app(index, token="...")                # FastAPI: /health /search /documents /log /rollback
"""



def _define_anyio_classes() -> None:
    """Import anyio's typed-attribute classes before they are needed, with nnsight's `object.save` out of their way.

    nnsight (imported by the editing layer) mounts a `save` method on every object; anyio refuses to define a
    TypedAttributeSet subclass with an unannotated public name, and defines some lazily, when the server first runs
    a thread or a socket. Defining them here, unmounted for the moment if nnsight is already loaded, avoids that.
    """
    import sys

    mounted = getattr(object, "save", None) if "nnsight" in sys.modules else None
    if mounted is not None:
        from nnsight._c import mount, unmount

        unmount("save")
    try:
        import anyio._backends._asyncio  # noqa: F401
        import anyio.streams.file  # noqa: F401
        import anyio.streams.tls  # noqa: F401
    finally:
        if mounted is not None:
            mount(mounted, "save")


_define_anyio_classes()

from genedit.serve.index import EditResult, LiveIndex, ReadOnlyIndex, RequestError, Snapshot  # noqa: E402

__all__ = ["EditResult", "LiveIndex", "ReadOnlyIndex", "RequestError", "Snapshot", "create_app"]


def __getattr__(name: str):
    """`create_app` imported on first use (FastAPI is only needed to serve over HTTP)."""
    if name == "create_app":
        from genedit.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'genedit.serve' has no attribute {name!r}")
