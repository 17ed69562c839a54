"""Reading the lake: polars LazyFrames per table and duckdb SQL over views.

Partition pruning happens at listing time on the ``model=`` and ``date=``
folders, so a query for one model and one week opens only that week's
objects. A corrupt object does not stop a read: it is named in a
:class:`~mlmon.errors.CorruptObjectWarning`, set aside, and the rest is read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mlmon.errors import CorruptObjectWarning, LakeError, LakeUnreachable, TimestampError
from mlmon.lake.layout import (
    COMPACTED_OBJECT,
    DAY_ROLLUP,
    LEGACY_DAY_ROLLUP,
    MANIFEST,
    compacted_name,
    compacted_prefix,
    is_window,
    partition,
    rollup_prefix,
)
from mlmon.lake.references import reference_from_rows
from mlmon.lake.rollup import COVERS_KEY, ROLLUP_GROUPS, rollup_rows
from mlmon.lake.schema import SCHEMA_VERSION, TABLES, table
from mlmon.lake.sql import macros as sql_macros
from mlmon.lake.storage import Storage, open_storage, put_object
from mlmon.lake.writer import parquet_bytes
from mlmon.profiles.frame import Reference

__all__ = ["LakeStore"]

_PARTITIONS = pa.schema([("model", pa.string()), ("date", pa.date32())])
#: The only objects compaction ever deletes: its own earlier outputs.
_COMPACTED_NAME = COMPACTED_OBJECT
log = logging.getLogger("mlmon.lake.reader")
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def _as_utc(ts: datetime | date | str | None, what: str) -> datetime | None:
    if ts is None:
        return None
    if isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError as exc:
            raise TimestampError(f"{what} {ts!r} is not an ISO-8601 date or time") from exc
        if parsed.tzinfo is None:
            if len(ts) == 10:  # a plain date means midnight UTC
                parsed = parsed.replace(tzinfo=UTC)
            else:
                raise TimestampError(f"{what} {ts!r} has no UTC offset; add 'Z', e.g. {ts}Z")
        return parsed.astimezone(UTC)
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise TimestampError(f"{what} {ts.isoformat()} is naive; pass a UTC-aware datetime")
        return ts.astimezone(UTC)
    return datetime(ts.year, ts.month, ts.day, tzinfo=UTC)


class LakeStore:
    """Read access to a metric lake (``file://``, a path, or ``s3://bucket/prefix``)."""

    def __init__(self, uri: str | os.PathLike[str], storage_options: dict[str, Any] | None = None):
        self.storage: Storage = open_storage(uri, storage_options)
        self._quarantine: set[str] = set()
        self._con: duckdb.DuckDBPyConnection | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.storage.url()!r})"

    @property
    def uri(self) -> str:
        return self.storage.url()

    # -- listing ----------------------------------------------------------------------
    def table_root(self, name: str) -> str:
        table(name)
        return self.storage.path(f"v{SCHEMA_VERSION}", name)

    def _listdir(self, path: str) -> list[str]:
        fs = self.storage.fs
        try:
            if self.storage.is_local:
                return sorted(os.listdir(path)) if os.path.isdir(path) else []
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
        except FileNotFoundError:
            return []
        except PermissionError as exc:
            raise LakeError(
                f"not allowed to list {self.storage.url(path)}: {exc}; reading needs list+get"
            ) from exc
        except Exception as exc:  # botocore's connection errors are not OSErrors
            raise LakeUnreachable(
                f"cannot list {self.storage.url(path)}: {exc}; check the endpoint, network and bucket name"
            ) from exc

    def models(self, table_name: str = "profiles") -> list[str]:
        """Models that have data in ``table_name``."""
        return [d[6:] for d in self._listdir(self.table_root(table_name)) if d.startswith("model=")]

    def files(
        self,
        table_name: str,
        *,
        model: str | None = None,
        start: datetime | date | str | None = None,
        end: datetime | date | str | None = None,
        rollup: bool = False,
    ) -> list[str]:
        """Objects to read for a table, pruned by model and by the date partitions overlapping [start, end).

        Each window is read once: from a compacted object that covers it (see
        :meth:`compact`), or else from its own object. With ``rollup=True``, days
        that lie wholly inside [start, end) are read from a day rollup where one
        exists (compaction's, else the writers' own), plus every window it does
        not cover. Objects of the previous layout inside a table partition
        (``_compacted.json``, ``_day-*``) are honoured the same way.
        """
        out: list[str] = []
        for m, parts in self._partitions_by_model(table_name, model, start, end):
            compacted = self._tree(self.storage.path(compacted_prefix(table_name), f"model={m}"))
            rollups = (
                self._tree(self.storage.path(rollup_prefix(table_name), f"model={m}"))
                if rollup
                else {}
            )
            for ddir, day, whole_day in parts:
                key = f"date={day.isoformat()}"
                out.extend(
                    self._partition_files(
                        ddir,
                        compacted=(
                            self._sibling(compacted_prefix, table_name, m, day),
                            compacted.get(key, []),
                        ),
                        rollups=(
                            self._sibling(rollup_prefix, table_name, m, day),
                            rollups.get(key, []),
                        ),
                        rollup=rollup and whole_day,
                    )
                )
        return [p for p in out if p not in self._quarantine]

    def _partitions_by_model(
        self,
        table_name: str,
        model: str | None,
        start: datetime | date | str | None,
        end: datetime | date | str | None,
    ) -> Iterator[tuple[str, list[tuple[str, date, bool]]]]:
        by_model: dict[str, list[tuple[str, date, bool]]] = {}
        for m, ddir, day, whole in self._partitions(table_name, model, start, end):
            by_model.setdefault(m, []).append((ddir, day, whole))
        yield from by_model.items()

    def _partitions(
        self,
        table_name: str,
        model: str | None,
        start: datetime | date | str | None,
        end: datetime | date | str | None,
    ) -> Iterator[tuple[str, str, date, bool]]:
        """``(model, folder, day, whole day inside [start, end))`` of each date partition overlapping the range."""
        root = self.table_root(table_name)
        lo, hi = _as_utc(start, "start"), _as_utc(end, "end")
        first = lo.date() if lo else None
        last = (hi - timedelta(microseconds=1)).date() if hi else None
        for m in [model] if model is not None else self.models(table_name):
            mdir = f"{root}/model={m}"
            for d in self._listdir(mdir):
                match = _DATE_DIR.match(d)
                if not match:
                    continue
                day = date.fromisoformat(match.group(1))
                if (first and day < first) or (last and day > last):
                    continue
                midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
                whole = (lo is None or lo <= midnight) and (
                    hi is None or hi >= midnight + timedelta(days=1)
                )
                yield m, f"{mdir}/{d}", day, whole

    def _sibling(self, prefix: Callable[[str], str], table_name: str, model: str, day: date) -> str:
        """The same partition below another prefix (rollups, compacted)."""
        return self.storage.path(prefix(table_name), partition(model, day))

    def _tree(self, mdir: str) -> dict[str, list[str]]:
        """``{"date=...": [object names]}`` below one model folder of a rollups or compacted prefix.

        One recursive listing per model (on S3 one paginated LIST, not one per day):
        these prefixes hold a few objects per day.
        """
        if self.storage.is_local:
            return {d: self._listdir(f"{mdir}/{d}") for d in self._listdir(mdir)}
        try:
            found = self.storage.fs.find(mdir)
        except FileNotFoundError:
            return {}
        except PermissionError as exc:
            raise LakeError(
                f"not allowed to list {self.storage.url(mdir)}: {exc}; reading needs list+get"
            ) from exc
        except Exception as exc:  # botocore's connection errors are not OSErrors
            raise LakeUnreachable(
                f"cannot list {self.storage.url(mdir)}: {exc}; check the endpoint, network and bucket name"
            ) from exc
        out: dict[str, list[str]] = {}
        for path in found:
            parent, _, name = path.rstrip("/").rpartition("/")
            out.setdefault(parent.rsplit("/", 1)[-1], []).append(name)
        return {k: sorted(v) for k, v in out.items()}

    def _partition_files(
        self,
        ddir: str,
        *,
        compacted: tuple[str, list[str]],
        rollups: tuple[str, list[str]],
        rollup: bool = False,
    ) -> list[str]:
        """A partition's objects: a compacted object (or a day rollup) plus the windows it does not cover."""
        names = self._listdir(ddir)
        windows = [f for f in names if is_window(f)]
        cdir, cnames = compacted
        if MANIFEST in cnames:
            manifest_dir: str | None = cdir
        elif MANIFEST in names:  # the previous layout: compaction inside the table partition
            manifest_dir = ddir
        else:
            manifest_dir = None
        if manifest_dir is not None:
            manifest = self._read_manifest(f"{manifest_dir}/{MANIFEST}")
            covered = set(manifest["covers"])
            main = manifest.get("rollup") if rollup and manifest.get("rollup") else manifest["data"]
            return [f"{manifest_dir}/{main}"] + [f"{ddir}/{f}" for f in windows if f not in covered]
        if not rollup:
            return [f"{ddir}/{f}" for f in windows]
        rdir, rnames = rollups
        candidates = [f"{rdir}/{n}" for n in rnames if DAY_ROLLUP.match(n)]
        candidates += [f"{ddir}/{n}" for n in names if LEGACY_DAY_ROLLUP.match(n)]
        return self._with_day_rollups(ddir, candidates, windows)

    def _with_day_rollups(self, ddir: str, candidates: list[str], windows: list[str]) -> list[str]:
        """Writers' day rollups whose covered windows do not overlap, plus every window none covers.

        A rollup is taken only if none of its windows is already covered by one taken
        before (largest first): a writer's old-layout ``_day-`` rollup and its new one
        may cover the same windows, and a window must never be read twice.
        """
        found: list[tuple[str, set[str]]] = []
        for path in candidates:
            try:
                covers = self._rollup_covers(path)
            except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
                warnings.warn(
                    f"day rollup {self.storage.url(path)} is unreadable ({exc}); "
                    "reading that day's windows instead",
                    CorruptObjectWarning,
                    stacklevel=4,
                )
                continue
            found.append((path, covers))
        taken: list[str] = []
        covered: set[str] = set()
        for path, covers in sorted(found, key=lambda pc: (-len(pc[1]), pc[0])):
            if covers & covered:
                continue
            taken.append(path)
            covered |= covers
        return taken + [f"{ddir}/{f}" for f in windows if f not in covered]

    def _rollup_covers(self, path: str) -> set[str]:
        """The window object names a writer's day rollup holds (its ``mlmon.covers`` metadata)."""
        with self.storage.fs.open(path, "rb") as fh:
            meta = pq.read_schema(fh).metadata or {}
        return set(json.loads(meta[COVERS_KEY]))

    def _read_manifest(self, path: str) -> dict[str, Any]:
        try:
            with self.storage.fs.open(path, "rb") as fh:
                return json.loads(fh.read())
        except (OSError, ValueError) as exc:
            raise LakeError(
                f"cannot read compaction manifest {self.storage.url(path)}: {exc}"
            ) from exc

    def compact(
        self,
        table_name: str,
        *,
        model: str | None = None,
        start: datetime | date | str | None = None,
        end: datetime | date | str | None = None,
        min_objects: int = 2,
    ) -> list[str]:
        """Merge each day's small window objects into one object per partition (reader side job).

        Needs read access and PUT on ``v1/compacted/`` (the reader role; never the
        edge's credentials). Compacted objects go to
        ``v1/compacted/{table}/model=/date=/``, beside the table and never inside it,
        so a plain glob over the table still reads each record once. The sources are
        not deleted: a manifest (``_compacted.json``) lists the window objects the
        compacted object covers, and mlmon's readers skip them; windows written later
        (late data, retries of new keys) are still read from their own objects. The
        new compacted object gets a new name and the manifest is replaced in one PUT,
        so readers never see a window twice or not at all. A partition compacted
        by the previous layout (inside the table partition) is compacted anew here.

        Returns
        -------
        list of str
            The (table) partitions compacted.
        """
        done = []
        for m, ddir, day, _whole in self._partitions(table_name, model, start, end):
            names = self._listdir(ddir)
            objects = sorted(f for f in names if is_window(f))
            cdir = self._sibling(compacted_prefix, table_name, m, day)
            cnames = self._listdir(cdir)
            old = self._read_manifest(f"{cdir}/{MANIFEST}") if MANIFEST in cnames else None
            legacy = old is None and MANIFEST in names  # compacted by the previous layout
            pending = [f for f in objects if not old or f not in set(old["covers"])]
            if not legacy and len(pending) < min_objects and not (old and pending):
                continue
            sources = self._partition_files(ddir, compacted=(cdir, cnames), rollups=("", []))
            data = pl.read_parquet([self._local_or_url(f) for f in sources]) if self.storage.is_local else (
                pl.DataFrame(self._dataset(table_name, sources).to_table()).drop("model", "date")
            )  # fmt: skip
            data = data.sort(
                *[c for c in ("window_start", "collector_id", "feature") if c in data.columns]
            )
            generation = (old["generation"] + 1) if old else 1
            name = compacted_name("compacted", generation)
            tbl = table(table_name).conform(data.to_arrow())
            put_object(self.storage, f"{cdir}/{name}", parquet_bytes(tbl))
            manifest = {
                "generation": generation,
                "data": name,
                "covers": objects,
                "rows": tbl.num_rows,
            }
            if table_name in ROLLUP_GROUPS:
                day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                rolled = rollup_rows(table_name, data, day_start, day_start + timedelta(days=1))
                manifest["rollup"] = compacted_name("rollup", generation)
                blob = parquet_bytes(table(table_name).conform(rolled))
                put_object(self.storage, f"{cdir}/{manifest['rollup']}", blob)
            put_object(self.storage, f"{cdir}/{MANIFEST}", json.dumps(manifest, indent=1).encode())
            if old:  # unreferenced old compacted objects are harmless if this fails
                for stale in (old["data"], old.get("rollup")):
                    if not stale or stale in (name, manifest.get("rollup")):
                        continue
                    if not _COMPACTED_NAME.match(stale):
                        log.warning(
                            "compaction manifest %s names %s, which is not a compacted object; "
                            "left in place (compaction deletes only its own compacted-/rollup- objects)",
                            self.storage.url(f"{cdir}/{MANIFEST}"),
                            self.storage.url(f"{cdir}/{stale}"),
                        )
                        continue
                    with contextlib.suppress(OSError):
                        self.storage.fs.rm(f"{cdir}/{stale}")
            done.append(ddir)
        self._con = None
        return done

    def _local_or_url(self, path: str) -> str:
        return path if self.storage.is_local else self.storage.url(path)

    # -- polars -----------------------------------------------------------------------
    def _arrow_fs(self) -> pafs.FileSystem:
        if self.storage.is_local:
            return pafs.LocalFileSystem()
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.storage.fs))

    def _dataset(self, table_name: str, files: list[str]) -> ds.Dataset:
        return ds.dataset(
            files,
            schema=pa.unify_schemas([table(table_name).arrow_schema, _PARTITIONS]),
            format="parquet",
            filesystem=self._arrow_fs(),
            partitioning=ds.partitioning(_PARTITIONS, flavor="hive"),
            partition_base_dir=self.table_root(table_name),
        )

    def _empty(self, table_name: str) -> pl.DataFrame:
        schema = pa.unify_schemas([table(table_name).arrow_schema, _PARTITIONS])
        return pl.from_arrow(schema.empty_table())  # type: ignore[return-value]

    def scan(
        self,
        table_name: str,
        *,
        model: str | None = None,
        start: datetime | date | str | None = None,
        end: datetime | date | str | None = None,
        rollup: bool = False,
    ) -> pl.LazyFrame:
        """A LazyFrame over a table, pruned to ``model`` and the dates of [start, end).

        Rows are filtered to ``window_start`` in [start, end) where the table has it.
        ``rollup=True`` reads whole days from their day rollups where compaction
        made one (rows then stand for a whole day: use it for daily or coarser results).
        """
        files = self.files(table_name, model=model, start=start, end=end, rollup=rollup)
        if not files:
            lf = self._empty(table_name).lazy()
        elif self.storage.is_local:  # polars' native reader: the fastest over many objects
            lf = pl.scan_parquet(
                files,
                hive_partitioning=True,
                hive_schema={"model": pl.String, "date": pl.Date},
                missing_columns="insert",
                extra_columns="ignore",
            )
        else:
            lf = pl.scan_pyarrow_dataset(self._dataset(table_name, files))
        col = "window_start" if "window_start" in table(table_name).names else None
        lo, hi = _as_utc(start, "start"), _as_utc(end, "end")
        if col and lo:
            lf = lf.filter(pl.col(col) >= lo)
        if col and hi:
            lf = lf.filter(pl.col(col) < hi)
        return lf

    def read(
        self,
        table_name: str,
        *,
        model: str | None = None,
        start: datetime | date | str | None = None,
        end: datetime | date | str | None = None,
        columns: Iterable[str] | None = None,
    ) -> pl.DataFrame:
        """Read a table into a DataFrame; corrupt objects are warned about and skipped."""
        for attempt in range(2):
            lf = self.scan(table_name, model=model, start=start, end=end)
            if columns is not None:
                lf = lf.select(list(columns))
            try:
                return lf.collect()
            except Exception as exc:  # arrow/polars wrap storage errors in many types
                if attempt or not self._find_corrupt(
                    self.files(table_name, model=model, start=start, end=end)
                ):
                    raise LakeError(
                        f"cannot read table {table_name!r} from {self.uri}: {exc}"
                    ) from exc
        raise AssertionError("unreachable")

    def _find_corrupt(self, files: list[str]) -> list[str]:
        """Check each object's Parquet footer; quarantine and warn about the bad ones."""
        fs = self._arrow_fs()

        def bad(path: str) -> str | None:
            try:
                with fs.open_input_file(path) as fh:
                    pq.ParquetFile(fh).read()
                return None
            except FileNotFoundError:
                return None
            except (pa.ArrowException, OSError) as exc:
                return f"{self.storage.url(path)}: {exc}"

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(bad, files))
        found = []
        for path, problem in zip(files, results, strict=True):
            if problem:
                self._quarantine.add(path)
                found.append(path)
                warnings.warn(
                    f"skipping corrupt lake object {problem}; the rest of the table is read. "
                    "Re-run the collector for that window or remove the object.",
                    CorruptObjectWarning,
                    stacklevel=4,
                )
        if found:
            self._con = None
        return found

    # -- duckdb -----------------------------------------------------------------------
    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """A duckdb connection with one view per table (hive partitioning on) and mlmon's macros.

        The macros are :mod:`mlmon.lake.sql`'s ``macros.sql`` (``mlmon_sketch_quantile``,
        ``mlmon_psi``, ...), the same a BI user pastes into plain duckdb.
        """
        if self._con is None:
            con = duckdb.connect(
                config={
                    "autoinstall_known_extensions": "false",
                    "autoload_known_extensions": "false",
                }
            )
            if not self.storage.is_local:
                con.register_filesystem(self.storage.fs)
            con.execute(sql_macros())  # mlmon_sketch_quantile, mlmon_psi, ... (docs/lake.md)
            for name in TABLES:
                self._create_view(con, name)
            for name, frame in getattr(self, "_frames", {}).items():
                con.register(name, frame)
            self._con = con
        return self._con

    def register_frame(self, name: str, frame: pl.DataFrame) -> None:
        """Make ``frame`` a view ``name`` next to the lake's tables (kept across :meth:`refresh`).

        Examples
        --------
        >>> lake.register_frame("owners", pl.DataFrame({"model": ["risk"]}))  # doctest: +SKIP
        >>> lake.sql("SELECT * FROM profiles JOIN owners USING (model)")  # doctest: +SKIP
        """
        if name in TABLES:
            raise LakeError(f"cannot register a frame as {name!r}: that is a lake table name")
        self._frames = {**getattr(self, "_frames", {}), name: frame.to_arrow()}
        if self._con is not None:
            self._con.register(name, self._frames[name])

    def _create_view(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        # An explicit object list (not a glob): it honours compaction manifests and
        # skips quarantined corrupt objects. Call refresh() to see newer objects.
        files = self.files(name)
        if not files:
            con.register(f"__empty_{name}", self._empty(name).to_arrow())
            con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM "__empty_{name}"')
            return
        src = (
            "[" + ", ".join("'" + self.storage.url(f).replace("'", "''") + "'" for f in files) + "]"
        )
        con.execute(
            f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM read_parquet({src}, '
            "hive_partitioning = true, union_by_name = true, "
            "hive_types = {'model': VARCHAR, 'date': DATE})"
        )

    def refresh(self) -> None:
        """Forget the SQL views so the next query sees objects written since."""
        self._con = None

    def sql(self, query: str, params: list[Any] | None = None) -> pl.DataFrame:
        """Run SQL over the lake's views (``profiles``, ``latency``, ``drift``, ...).

        Examples
        --------
        >>> lake.sql("SELECT model, count(*) AS n FROM profiles GROUP BY model")  # doctest: +SKIP
        """
        for attempt in range(2):
            try:
                rel = self.con.sql(query, params=params or None)
                if rel is None:  # a statement without a result (SET, CREATE ...)
                    return pl.DataFrame()
                return rel.pl()
            except duckdb.Error as exc:
                msg = str(exc)
                parquet_trouble = "parquet" in msg.lower() or "magic" in msg.lower()
                if attempt or not parquet_trouble:
                    raise
                all_files = [f for name in TABLES for f in self.files(name)]
                if not self._find_corrupt(all_files):
                    raise
        raise AssertionError("unreachable")

    # -- references -------------------------------------------------------------------
    def reference(self, reference_id: str, *, model: str | None = None) -> Reference:
        """Load one reference from the ``references`` table."""
        rows = self.read("references", model=model).filter(pl.col("reference_id") == reference_id)
        if rows.height == 0:
            raise LakeError(
                f"reference {reference_id} is not in {self.uri} (references table); "
                "write it with `mlmon reference build --lake ...`"
            )
        models = rows.get_column("model").unique().to_list()
        return reference_from_rows(rows.drop("model", "date").to_arrow(), model=models[0])

    def latest_reference(self, model: str) -> Reference | None:
        """The most recently created reference of a model, or None."""
        rows = self.read("references", model=model)
        if rows.height == 0:
            return None
        ref_id = rows.sort("created_at").get_column("reference_id")[-1]
        return self.reference(ref_id, model=model)
