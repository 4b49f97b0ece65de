"""What was measured: one record per iteration and, for black-box runs, one per evaluation.

A :class:`History` lives in memory and, when given a path, is also appended to a JSON Lines file
as it grows, one record a line, flushed after each line, so that a crash or ``kill -9`` loses at
most the record in flight. ``History.save(path)`` / ``History.load(path)`` round-trip exactly
(floats are written with ``repr`` precision; NaN and infinities survive).

Every line is standard JSON, readable by ``jq``, JavaScript or pandas: a number JSON cannot hold
(the value of a failed evaluation, a diverged loss) is written as the string ``"NaN"``,
``"Infinity"`` or ``"-Infinity"`` (the spelling of protobuf's JSON mapping), and ``load`` reads it
back as the number; a string that reads like one of them is written behind the prefix ``text:``.
(Files written before this rule, with bare ``NaN``, load as well.)

File layout (JSON Lines)::

    {"kind": "meta", ...}                     # first line: version, estimator, optimizer, seed, ...
    {"kind": "evaluation", "eval": 0, ...}    # black-box runs: every evaluation as it finishes
    {"kind": "iteration", "iteration": 0, ...}
    {"kind": "meta", ...}                     # later: a fact learnt during the run, merged on load

Only the first meta line holds ``"format"``; a file with a second such line holds two runs (files
joined with ``cat``) and is refused by ``load``. A resumed run appends to its file under the same
first line.

Iteration records hold ``iteration, nfev, time, loss, grad_norm, x`` (``x`` the flat parameter
vector, or ``None`` for vectors longer than :data:`MAX_RECORDED_X`). Evaluation records hold
``eval, iteration, x, value, samples, statistic, spread, status`` and, where the objective gives
them, ``params`` (user units), ``error``, ``t_start``, ``t_end``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable

import numpy as np

from gdtools.errors import InputError
from gdtools.output_path import written_whole

#: Parameter vectors longer than this are not stored in iteration records (an image would be).
MAX_RECORDED_X = 10_000

FORMAT_VERSION = 1


def plain_data(value: Any) -> Any:
    """Convert NumPy/JAX scalars and arrays to JSON-ready Python values."""
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        arr = np.asarray(value)
        if arr.ndim == 0:
            return plain_data(arr.item())
        if arr.dtype.kind in "biuf":
            return arr.tolist()  # already plain bools, ints and floats, nested as the array is
        return [plain_data(v) for v in arr.tolist()]
    return value


#: How a number that JSON cannot hold is written in a file, and what it is read back as.
NONFINITE_SPELLINGS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
#: A string that reads like a spelling (or starts with this prefix) is written behind this prefix,
#: so that it comes back as the same string.
TEXT_PREFIX = "text:"


def _spelled(value: Any) -> Any:
    """``value`` with each NaN or infinity replaced by its spelling (see NONFINITE_SPELLINGS)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str) and (value in NONFINITE_SPELLINGS or value.startswith(TEXT_PREFIX)):
        return TEXT_PREFIX + value
    if isinstance(value, dict):
        return {key: _spelled(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_spelled(item) for item in value]
    return value


def _read_spelled(value: Any) -> Any:
    """The inverse of :func:`_spelled`, for a record read from a file."""
    if isinstance(value, str):
        if value in NONFINITE_SPELLINGS:
            return NONFINITE_SPELLINGS[value]
        return value[len(TEXT_PREFIX):] if value.startswith(TEXT_PREFIX) else value
    if isinstance(value, dict):
        return {key: _read_spelled(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_read_spelled(item) for item in value]
    return value


def _may_hold_spelling(text: str) -> bool:
    """Whether a line of JSON may hold a spelling or a prefixed string (else it needs no walk)."""
    return '"NaN"' in text or 'Infinity"' in text or f'"{TEXT_PREFIX}' in text


def _dumps(record: dict) -> str:
    """A record as one line of standard JSON."""
    try:
        text = json.dumps(record, allow_nan=False)
    except ValueError:  # a NaN or infinity in it
        text = None
    if text is None or _may_hold_spelling(text):
        text = json.dumps(_spelled(record), allow_nan=False)
    return text


def _saved_line(record: dict, path: str) -> str:
    """A record as History.save writes it to ``path``: NumPy and JAX numbers the user added to it
    made plain; an InputError for a value JSON cannot hold."""
    try:
        return _dumps(record)
    except TypeError:
        pass
    try:
        return _dumps(plain_data(record))
    except TypeError as exc:
        raise InputError(f"cannot save the history to {path!r}: a record ({record['kind']}) holds a value "
                         f"that is not a number, a string, or a list or dict of them ({exc}); {path!r} is "
                         f"left as it was") from None


def _loads(line: str) -> Any:
    """A record from one line of a history file."""
    record = json.loads(line)
    return _read_spelled(record) if _may_hold_spelling(line) else record


def _check_meta_fields(fields: dict) -> None:
    """InputError for a meta field named "kind": written first, it would replace the line's
    ``"kind": "meta"``, and ``load`` would refuse the file as no history."""
    if "kind" in fields:
        raise InputError(f"History meta: 'kind' is reserved (it says what each line of the file is: "
                         f"meta, evaluation or iteration); give the field {fields['kind']!r} another "
                         f"name, e.g. run_kind")


def _drop_partial_last_line(path: str) -> None:
    """Cut a last line that a crash left without its newline, or that is no JSON record even with
    one (``load`` skips either), so that records appended after it start on a line of their own
    (one left in the middle made the whole file unreadable)."""
    with open(path, "rb+") as f:
        data = f.read()
        if not data:
            return
        body = data[:-1] if data.endswith(b"\n") else data
        start = body.rfind(b"\n") + 1
        try:
            json.loads(body[start:])
        except ValueError:
            f.truncate(start)  # cut short: load() skipped it too
        else:
            if not data.endswith(b"\n"):
                f.write(b"\n")  # a whole record that only lacks its newline


def _kind(record) -> str | None:
    """A history record's kind ("meta", "evaluation", "iteration"), None for anything else."""
    return record.get("kind") if isinstance(record, dict) else None


def _cut_keeping_meta(f, lines: list[bytes], at: int, keep=lambda record: False) -> None:
    """Cut the open file ``f``, read as ``lines``, from line ``at``; the meta records among the
    lines cut are written back, in their order (facts learnt during the run stay), and so are the
    records ``keep`` is true of."""
    kept = [line for line in lines[at:]
            if line.strip() and (_kind(record := json.loads(line)) == "meta" or keep(record))]
    f.seek(sum(len(line) for line in lines[:at]))
    f.truncate()
    f.writelines(kept)


def _drop_final_record(path: str) -> bool:
    """Cut the run's final iteration record if it ends the file (after it only meta lines, such as
    ``gdtools tune``'s side-by-side, which stay, in their order); whether it did."""
    with open(path, "rb+") as f:
        lines = f.read().splitlines(keepends=True)
        for i in range(len(lines) - 1, 0, -1):
            if not lines[i].strip():
                continue
            try:
                record = json.loads(lines[i])
            except ValueError:
                return False
            if _kind(record) == "meta":
                continue
            if not (_kind(record) == "iteration" and record.get("final")):
                return False
            _cut_keeping_meta(f, lines, i)
            return True
        return False


def _drop_trailing_failures(path: str) -> int:
    """Cut the failed evaluations in a row that end the run, in the order of their indices, from
    the file (the iteration records from the first of them on go too; meta records stay, in their
    order); how many were cut. A run that stopped on failures in a row (a crashed program, a full
    disk) would stop again at once if a resume replayed them: it measures them again instead, as if
    it had been cut off just before them. (By index, not by line: a parallel batch's evaluations
    are written as they finish, so a probe that succeeded may follow the failed one after it.)"""
    with open(path, "rb+") as f:
        lines = f.read().splitlines(keepends=True)
        records = []
        for line in lines:
            try:
                records.append(json.loads(line) if line.strip() else None)
            except ValueError:
                records.append(None)
        latest = {}  # each index's last record (a resumed run that took another path measured again)
        for i, record in enumerate(records):
            if _kind(record) == "evaluation":
                latest[record.get("index", record.get("eval"))] = i
        first = None  # the first index of the failures that end the run
        for index in sorted((i for i in latest if isinstance(i, int)), reverse=True):
            if records[latest[index]].get("status") != "failed":
                break
            first = index
        if first is None:
            return 0
        cut = [latest[i] for i in latest if isinstance(i, int) and i >= first]
        _cut_keeping_meta(f, lines, min(cut), keep=lambda record: (
            _kind(record) == "evaluation" and isinstance(i := record.get("index", record.get("eval")), int)
            and i < first))
    return len(cut)


class History:
    """Records of one run, optionally mirrored to an append-only JSON Lines file.

    Args:
      path: file to append records to as they arrive (``None``: memory only).
      meta: run description stored as the first line (estimator, optimizer, seed, space, ...).
      append: if True and ``path`` exists, keep its records (used by resume) instead of replacing it;
        failed evaluations that end the file are cut, to be measured again.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, meta: dict | None = None,
                 append: bool = False):
        _check_meta_fields(meta or {})
        self.meta: dict = {"format": FORMAT_VERSION, **plain_data(meta or {})}
        self._iterations: list[dict] = []
        # Blocks of iteration records kept as columns until someone asks for the records (see
        # record_iterations): a compiled run's thousands of rows cost nothing until then.
        self._blocks: list[tuple[dict, np.ndarray | None, int]] = []   # (columns, xs, rows)
        self.evaluations: list[dict] = []
        # a resumed run's evaluations from the file, by index: one measured again under its index
        # (the run took another path from there) replaces it, as load() keeps the later record
        self._recorded: dict = {}
        #: free coordinates -> the whole flat point, for a problem with parameters fixed by their
        #: bounds (gdtools.fixed_parameters): records hold the whole point, as the user wrote it
        self.expand_x = None
        self.path = None if path is None else os.fspath(path)
        self._file = None
        if self.path is not None:
            if append and os.path.exists(self.path) and os.path.getsize(self.path) > 0:
                old = History.load(self.path)
                self.meta = {**old.meta, **self.meta}
                _drop_partial_last_line(self.path)
                if old.iterations and old.iterations[-1].get("final") and _drop_final_record(self.path):
                    # A finished run resumed (with the same budget, or more): its end is not the end
                    # any more. The final measurement's evaluation stays, to be replayed.
                    old.iterations.pop()
                if _drop_trailing_failures(self.path):
                    old = History.load(self.path)
                self.iterations, self.evaluations = old.iterations, old.evaluations
                self._recorded = {r["index"]: r for r in old.evaluations if r.get("index") is not None}
                self._file = open(self.path, "a", encoding="utf-8")
            else:
                self._file = open(self.path, "w", encoding="utf-8")
                self._write({"kind": "meta", **self.meta})

    # -- writing -------------------------------------------------------------------------------
    def _write(self, record: dict) -> None:
        if self._file is not None:
            self._file.write(_dumps(record) + "\n")
            self._file.flush()

    @property
    def iterations(self) -> list[dict]:
        """The iteration records, in order (one dict each)."""
        if self._blocks:
            blocks, self._blocks = self._blocks, []
            for columns, xs, size in blocks:
                names = list(columns)
                fields = zip(*[columns[name].tolist() for name in names]) if names else [()] * size
                rows = xs.tolist() if xs is not None else [None] * size
                self._iterations.extend({"kind": "iteration", **dict(zip(names, row)), "x": x}
                                        for row, x in zip(fields, rows))
        return self._iterations

    @iterations.setter
    def iterations(self, records: list[dict]) -> None:
        self._blocks = []
        self._iterations = records

    def as_recorded(self, x):
        """The point ``x`` of the engine's flat problem as a record holds it (the whole point)."""
        return x if x is None or self.expand_x is None else self.expand_x(x)

    def record_iteration(self, **fields) -> dict:
        """Append an iteration record (``iteration, nfev, time, loss, grad_norm, x``...)."""
        for name in ("x", "last_x"):  # (last_x: the search's last iterate, where another point stands in)
            if name in fields:
                fields[name] = self.as_recorded(fields[name])
            if fields.get(name) is not None and np.size(fields[name]) > MAX_RECORDED_X:
                fields[name] = None
        record = {"kind": "iteration", **plain_data(fields)}
        self.iterations.append(record)
        self._write(record)
        return record

    def record_iterations(self, **columns) -> None:
        """Append many iteration records at once, from equal-length columns (arrays or lists;
        ``x`` may be a 2-D array, one row per record, or None). Same records as calling
        :meth:`record_iteration` for each row; in memory they stay columns until ``iterations``
        is read (``column``, ``loss`` and ``x`` read the columns), so a compiled run's thousands of
        records cost next to nothing."""
        xs = self.as_recorded(columns.pop("x", None))
        columns = {name: np.array(value) for name, value in columns.items()}
        sizes = {len(value) for value in columns.values()} | ({len(xs)} if xs is not None else set())
        if len(sizes) > 1:
            raise InputError(f"record_iterations needs columns of one length, got lengths {sorted(sizes)}")
        size = sizes.pop() if sizes else 0
        if xs is not None and np.shape(xs)[1] > MAX_RECORDED_X:
            xs = None
        if not size:
            return
        self._blocks.append((columns, None if xs is None else np.array(xs), size))
        if self._file is not None:
            start = len(self._iterations)
            for record in self.iterations[start:]:
                self._write(record)

    def record_evaluation(self, **fields) -> dict:
        """Append an evaluation record (``x, value, samples, status``...); numbered in order."""
        if "x" in fields:
            fields["x"] = self.as_recorded(fields["x"])
        record = {"kind": "evaluation", "eval": len(self.evaluations), **plain_data(fields)}
        stale = self._recorded.pop(record.get("index"), None) if self._recorded else None
        if stale is not None:
            self.evaluations = [r for r in self.evaluations if r is not stale]
        self.evaluations.append(record)
        self._write(record)
        return record

    def update_meta(self, **fields) -> None:
        """Add run facts to ``meta``; a history written to a file as it happens gets them as a
        further meta line, which ``load`` merges into the first."""
        _check_meta_fields(fields)
        fields = plain_data(fields)
        self.meta.update(fields)
        self._write({"kind": "meta", **fields})

    @staticmethod
    def append_meta(path, **fields) -> None:
        """Add run facts to a finished history file as a further meta line (what ``update_meta``
        writes during a run; ``load`` merges it into the first): e.g. ``gdtools tune``'s side-by-side
        measurements, made after the run."""
        _check_meta_fields(fields)
        with open(path, "a", encoding="utf-8") as file:
            file.write(_dumps({"kind": "meta", **plain_data(fields)}) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._iterations) + sum(size for _, _, size in self._blocks)

    def __copy__(self) -> "History":
        self.iterations  # noqa: B018  (builds the pending records: a copy must not share them)
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        return copy

    def __setstate__(self, state: dict) -> None:
        # a History pickled before records could be pending kept them as `iterations`
        if "iterations" in state:
            state["_iterations"] = state.pop("iterations")
        state.setdefault("_iterations", [])
        state.setdefault("_blocks", [])
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return (f"History({len(self.iterations)} iterations, {len(self.evaluations)} evaluations"
                + (f", path={self.path!r})" if self.path else ")"))

    def column(self, name: str, *, records: str = "iterations") -> np.ndarray:
        """One field of every iteration (or evaluation) record as a float array (missing: nan).

        Raises ValueError naming the record when a value is not a number (a list, a string)."""
        if records == "iterations" and self._blocks:
            parts = [self._column(self._iterations, name)]
            for columns, xs, size in self._blocks:
                parts.append(np.asarray(columns[name], dtype=float) if name in columns
                             else np.full(size, np.nan))
            return np.concatenate(parts)
        return self._column(self.iterations if records == "iterations" else self.evaluations, name)

    @staticmethod
    def _column(rows: list[dict], name: str) -> np.ndarray:
        values = [np.nan if r.get(name) is None else r[name] for r in rows]
        try:
            column = np.array(values, dtype=float)
        except (TypeError, ValueError):
            column = None
        if column is None or column.ndim != 1:
            # A hand-edited or foreign file: say which record holds what, not NumPy's complaint (or,
            # for a list, a 2-D array that breaks whoever indexes it)
            for i, value in enumerate(values):
                try:
                    float(value)
                except (TypeError, ValueError):
                    kind = rows[i].get("kind", "")
                    raise ValueError(f"{name!r} of {kind + ' ' if kind else ''}record {i + 1} is "
                                     f"{value!r}, not a number") from None
        return column

    @property
    def loss(self) -> np.ndarray:
        return self.column("loss")

    @property
    def best_loss(self) -> np.ndarray:
        """Running minimum of the loss (nan where nothing finite was seen yet)."""
        loss = self.loss
        out = np.full_like(loss, np.nan)
        best = math.inf
        for i, v in enumerate(loss):
            if np.isfinite(v) and v < best:
                best = v
            out[i] = best if best < math.inf else np.nan
        return out

    @property
    def x(self) -> np.ndarray | None:
        """Iteration-by-parameter array of recorded points, or None when none were recorded."""
        if self._blocks and not self._iterations:
            if any(xs is None for _, xs, _ in self._blocks):
                return None
            return np.concatenate([np.asarray(xs, dtype=float) for _, xs, _ in self._blocks])
        xs = [r.get("x") for r in self.iterations]
        if not xs or any(v is None for v in xs):
            return None
        return np.array(xs, dtype=float)

    def __eq__(self, other) -> bool:
        if not isinstance(other, History):
            return NotImplemented
        # compared as save() writes them: a NumPy or JAX number added to a record (json.dumps
        # raised a TypeError on it) equals the plain number it is saved and loaded as
        dump = lambda h: json.dumps(plain_data([h.meta, h.iterations, h.evaluations]), sort_keys=True,
                                    default=repr)
        return dump(self) == dump(other)

    # -- files ---------------------------------------------------------------------------------
    def records(self) -> Iterable[dict]:
        yield {"kind": "meta", **self.meta}
        # Interleave by arrival is not kept in memory; evaluations first keeps files loadable.
        yield from self.evaluations
        yield from self.iterations

    def save(self, path: str | os.PathLike) -> None:
        """Write all records to ``path`` (JSON Lines), replacing it once all are written: a record
        that cannot be written leaves the file as it was (often the run's own file, loaded to add
        a field). NumPy and JAX numbers and arrays in the records are written as plain numbers."""
        path = os.fspath(path)
        with written_whole(path) as partial, open(partial, "w", encoding="utf-8") as f:
            for record in self.records():
                f.write(_saved_line(record, path) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "History":
        """Read a history file written by ``save`` or by a run with ``history=path``.

        A last line cut short by a crash is ignored; any other unreadable line is an error, and so
        is a file that holds more than one run (a second meta line with ``"format"``: only a run's
        first line has it; a resumed run appends to its file without one).
        """
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except UnicodeDecodeError:
            raise InputError(f"{path!r} is not a history file: it is not text (a history is JSON "
                             f"lines, written by history= or --history)") from None
        except OSError as exc:
            raise InputError(f"cannot read history file {path!r}: {exc}") from None
        history = cls()
        seen_meta = False
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = _loads(line)
            except json.JSONDecodeError:
                if number == len(lines) and (seen_meta or history.iterations or history.evaluations):
                    break  # a record cut short by a crash (not the only line: a crash keeps the meta)
                raise InputError(f"history file {path!r}, line {number}: not a JSON record") from None
            kind = record.pop("kind", None) if isinstance(record, dict) else None
            if kind == "meta":
                if seen_meta and "format" in record:
                    # Only a run's first meta line says "format" (update_meta, append_meta and a
                    # resume write none): a second one is another run's start, e.g. two files
                    # joined with `cat`, whose records would merge into one garbled run.
                    raise InputError(f"{path!r} holds more than one run (a second run starts at line "
                                     f"{number}); give each run its own history file")
                # a later meta line adds what the run learnt on the way (update_meta)
                history.meta = {**history.meta, **record} if seen_meta else record
                seen_meta = True
            elif kind == "iteration":
                history.iterations.append({"kind": kind, **record})
            elif kind == "evaluation":
                history.evaluations.append({"kind": kind, **record})
            elif kind is None or not seen_meta:
                # JSON, but not a history's (a foreign JSON Lines file): no "kind", or no meta first
                what = ("it is not a JSON object" if not isinstance(record, dict) else 'it has no "kind"'
                        if kind is None else f"kind {kind!r} before any meta record")
                raise InputError(f"{path!r} is not a gdtools history file (line {number} is not a history "
                                 f"record: {what})")
            else:
                raise InputError(f"history file {path!r}, line {number}: unknown record kind {kind!r}")
        if not seen_meta:
            raise InputError(f"{path!r} is not a gdtools history file (no meta record on its first line)")
        # A resumed run that took another path from some evaluation on measured again under the
        # same indices: the later record of an index is the run's (the earlier stays in the file).
        indices = [r.get("index") for r in history.evaluations]
        if len({i for i in indices if i is not None}) < sum(i is not None for i in indices):
            last = {i: position for position, i in enumerate(indices) if i is not None}
            history.evaluations = [r for position, r in enumerate(history.evaluations)
                                   if r.get("index") is None or last[r["index"]] == position]
        history.path = path
        return history
