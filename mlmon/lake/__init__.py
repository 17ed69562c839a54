"""The metric lake: storage, schema, append-only writer, readers."""

from mlmon.lake.reader import LakeStore
from mlmon.lake.references import load_reference, save_reference
from mlmon.lake.schema import SCHEMA_VERSION, TABLES
from mlmon.lake.storage import Storage, open_storage, put_object
from mlmon.lake.writer import LakeWriter, WriteRecord

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
