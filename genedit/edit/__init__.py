"""Editing a deployed GenIR index: add, delete and update documents in place, journalled, with undo and rollback.

    from genedit.edit import Editor
    ed = Editor(model, corpus=collection)     # corpus: what the model indexes (for preservation / replay)
    ed.add(docs); ed.delete(["doc-id"]); ed.update(docs)
    ed.undo(); ed.rollback(to=3); ed.log()
    model.save(folder)                        # model + journal; in place = a new version made current atomically
"""

from genedit.edit.context import EditSettings
from genedit.edit.editor import Editor, rollback_model, undo_last
from genedit.edit.methods import OPS, EditMethod, method_names, methods_for
from genedit.model.journal import JournalEntry  # what every edit returns: its journal entry

__all__ = ["OPS", "EditMethod", "EditSettings", "Editor", "JournalEntry", "method_names", "methods_for", "rollback_model", "undo_last"]
