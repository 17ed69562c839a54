"""The metric lake: storage, schema, append-only writer, readers."""

from typing import TYPE_CHECKING, Any

from mlmon.lake.references import load_reference, save_reference
from mlmon.lake.schema import SCHEMA_VERSION, TABLES
from mlmon.lake.storage import Storage, open_storage, put_object
from mlmon.lake.writer import LakeWriter, WriteRecord

if TYPE_CHECKING:
    from mlmon.lake.reader import LakeStore

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "LakeStore",
    "LakeWriter",
    "Storage",
    "WriteRecord",
    "load_reference",
    "open_storage",
    "put_object",
    "save_reference",
]


def __getattr__(name: str) -> Any:
    # LakeStore on first use: the reader imports pyarrow.dataset (and pandas), which
    # writing the lake (`mlmon profile`, the edge) never needs
    if name == "LakeStore":
        from mlmon.lake.reader import LakeStore

        return LakeStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
