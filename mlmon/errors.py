"""Every exception mlmon raises on purpose.

One root, and each class also inherits the builtin a caller would catch::

    MlmonError
    ├── ConfigError(ValueError)           a config file, flag or argument is wrong
    │   └── ForeignFilesError(FileExistsError)  an output path holds files mlmon did not write
    ├── SchemaError(ValueError)           data does not match the schema/reference
    │   └── TimestampError                naive, non-UTC or unparseable timestamps
    ├── ProfileError(ValueError)          profiles that cannot be merged or compared
    ├── UnknownNameError(KeyError)        a lookup in a registry (method, kind, adapter) missed
    ├── DuplicateNameError(ValueError)    a registry refused to overwrite an entry
    ├── MissingExtraError(ImportError)    an optional dependency is not installed
    ├── LakeError(OSError)                the metric lake could not be used
    │   ├── LakeUnreachable(ConnectionError)   storage did not answer
    │   ├── LakeWriteDenied(PermissionError)   storage refused a write
    │   └── CorruptObjectError                 an object in the lake is not valid Parquet
    ├── EdgeError                         the edge collector failed (probe, stream, batch)
    └── GovernanceError                   audit, retention or attestation checks failed

Warnings: :class:`CorruptObjectWarning` is emitted when a reader skips an
unreadable object and goes on with the rest; :class:`MlmonDeprecationWarning`
when a setting is accepted but no longer does anything.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CorruptObjectError",
    "CorruptObjectWarning",
    "DuplicateNameError",
    "EdgeError",
    "ForeignFilesError",
    "GovernanceError",
    "LakeError",
    "LakeUnreachable",
    "LakeWriteDenied",
    "MissingExtraError",
    "MlmonDeprecationWarning",
    "MlmonError",
    "ProfileError",
    "SchemaError",
    "SegmentWarning",
    "TimestampError",
    "UnknownNameError",
]


class MlmonError(Exception):
    """Root of every error mlmon raises on purpose."""


class ConfigError(MlmonError, ValueError):
    """A config file, flag or argument is wrong; the message names it and the fix."""


class ForeignFilesError(ConfigError, FileExistsError):
    """A folder or file mlmon would replace or delete is not one it wrote; nothing was touched.

    The message names the paths (never their content) and how to choose another place.
    """


class SchemaError(MlmonError, ValueError):
    """Data does not match the declared schema or the reference."""


class TimestampError(SchemaError):
    """Timestamps are naive, not UTC, or cannot be parsed."""


class ProfileError(MlmonError, ValueError):
    """Profiles that cannot be merged or compared (different edges, vocabularies, kinds)."""


class UnknownNameError(MlmonError, KeyError):
    """A registry lookup missed; the message lists the registered names."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(MlmonError, ValueError):
    """A registry refused to replace an existing entry (pass ``replace=True``)."""


class MissingExtraError(MlmonError, ImportError):
    """An optional dependency is missing; the message gives the ``pip install`` line."""


class LakeError(MlmonError, OSError):
    """The metric lake could not be read or written."""


class LakeUnreachable(LakeError, ConnectionError):
    """The lake's storage did not answer (wrong endpoint, network, bucket missing)."""


class LakeWriteDenied(LakeError, PermissionError):
    """The lake's storage refused a write (credentials, policy, KMS key)."""


class CorruptObjectError(LakeError):
    """An object in the lake is not readable Parquet."""


class EdgeError(MlmonError):
    """The edge collector could not carry out a probe, stream read or batch trigger."""


class GovernanceError(MlmonError):
    """An audit chain, retention run or attestation did not verify."""


class CorruptObjectWarning(UserWarning):
    """A reader skipped an unreadable lake object and read the rest."""


class MlmonDeprecationWarning(FutureWarning):
    """A setting or flag is still accepted but no longer does anything (shown to users:
    :class:`FutureWarning`, not :class:`DeprecationWarning`, which Python hides by default)."""


class SegmentWarning(UserWarning):
    """A segment will not tell anything (e.g. its learned allow-list came out empty); the
    message names the column, never a value."""
