"""Load case records from JSON, YAML, JSONL files or a directory, with errors a user can act on.

Every command that runs consultations reads its cases through :func:`load_cases`
(``medverify simulate --case``, ``medverify consult-bench --cases``, ``medverify cases list``,
``medverify demo`` with the bundled set). A malformed case stops the load with one line naming
the file, the JSONL line, the case id and the field, e.g.
``cases/x.json case 'ac-012' field 'facts.3.category': Input should be 'history', ...``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from medverify.cases.records import CaseRecord
from medverify.errors import InputError

logger = logging.getLogger(__name__)

JSON_SUFFIXES = frozenset({".json"})
YAML_SUFFIXES = frozenset({".yaml", ".yml"})
JSONL_SUFFIXES = frozenset({".jsonl"})
CASE_SUFFIXES = JSON_SUFFIXES | YAML_SUFFIXES | JSONL_SUFFIXES
#: ``--case bundled:ID`` picks the bundled case ``ID`` even when a file of that name exists.
BUNDLED_PREFIX = "bundled:"
#: A case id: it names files (``<id>.json``, run folders), so letters, digits, ``.``, ``_`` and
#: ``-`` only, starting with a letter or digit, at most 128 characters.
_CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def case_id_problem(case_id: Any) -> str | None:
    """Why ``case_id`` cannot be a case id (``None`` when it can).

    Ids become file and folder names, so one like ``../../x``, ``a/b`` or ``.hidden`` is refused
    wherever a case is loaded, imported or written.
    """
    if not isinstance(case_id, str) or not case_id:
        return None  # the record's own validation reports a missing, empty or non-string id
    if _CASE_ID.fullmatch(case_id):
        return None
    if "/" in case_id or "\\" in case_id:
        why = "must not contain path separators"
    elif case_id.startswith("."):
        why = "must not start with '.'"
    elif len(case_id) > 128:
        why = "must be at most 128 characters"
    else:
        why = "must start with a letter or digit and hold only letters, digits, '.', '_', '-'"
    return f"a case id {why}"


class CaseInputError(InputError):
    """A case file that cannot be read, located by file, line, case and field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        case: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, path=path, line=line, field=field)
        self.case = case
        where = []
        if self.path is not None:
            where.append(self.path + (f":{line}" if line is not None else ""))
        if case:
            where.append(f"case {case}")
        if field:
            where.append(f"field '{field}'")
        Exception.__init__(self, f"{' '.join(where)}: {message}" if where else message)


def load_cases(path: str | Path) -> list[CaseRecord]:
    """Read case records from a file or a directory.

    Args:
        path: A ``.json`` file (one case or a list), a ``.yaml``/``.yml`` file (one case or a
            list), a ``.jsonl`` file (one case per line), or a directory of such files (read in
            sorted order; other files are ignored).

    Returns:
        The cases, in file order.

    Raises:
        CaseInputError: A file is missing, unreadable or malformed, a case is invalid, or two
            cases share an id.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in CASE_SUFFIXES)
        if not files:
            raise CaseInputError(
                "no .json, .yaml or .jsonl case files in this directory", path=path
            )
    elif path.exists():
        files = [path]
    else:
        raise CaseInputError("no such file or directory", path=path)

    cases: list[CaseRecord] = []
    seen: dict[str, str] = {}
    for file in files:
        for line, case in _load_file(file):
            if case.id in seen:
                raise CaseInputError(
                    f"duplicate case id, first defined in {seen[case.id]}",
                    path=file,
                    line=line,
                    case=repr(case.id),
                )
            seen[case.id] = f"{file}" + (f":{line}" if line is not None else "")
            cases.append(case)
    logger.debug("loaded %d cases from %s", len(cases), path)
    return cases


def load_case(path: str | Path) -> CaseRecord:
    """Read a file that holds exactly one case.

    Raises:
        CaseInputError: The file is invalid or holds no case or several cases.
    """
    cases = load_cases(path)
    if len(cases) != 1:
        raise CaseInputError(f"expected one case, found {len(cases)}", path=path)
    return cases[0]


def bundled_cases_dir() -> Path:
    """The directory of curated cases shipped with medverify (``medverify/data/cases``)."""
    return Path(str(resources.files("medverify").joinpath("data", "cases")))


def load_bundled_cases() -> list[CaseRecord]:
    """The curated cases shipped with medverify (see ``data/cases/SOURCES.md``)."""
    return load_cases(bundled_cases_dir())


def case_json(case: CaseRecord) -> str:
    """The case as pretty UTF-8 JSON (unset optional fields left out), ending in a newline."""
    data = case.model_dump(mode="json", exclude_none=True)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_cases(
    cases: Iterable[CaseRecord], out_dir: str | Path, *, overwrite: bool = False
) -> list[Path]:
    """Write one ``<id>.json`` per case into ``out_dir``, all or nothing.

    The files are written to a temporary directory next to ``out_dir`` first and moved in only
    when every one was written, so a failure leaves no half-written set behind.

    Raises:
        CaseInputError: Two cases share an id, or a file exists and ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    cases = list(cases)
    names: dict[str, str] = {}
    for case in cases:
        name = f"{case.id}.json"
        problem = case_id_problem(case.id)
        if problem is not None:
            raise CaseInputError(problem, case=repr(case.id), field="id")
        if name in names:
            raise CaseInputError("duplicate case id", path=out_dir, case=repr(case.id))
        names[name] = case.id
    if not overwrite:
        clashes = [n for n in names if (out_dir / n).exists()]
        if clashes:
            raise CaseInputError(
                f"{len(clashes)} file(s) already exist, e.g. {clashes[0]} (use --overwrite)",
                path=out_dir,
            )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result should not be
    try:
        for case in cases:
            (staging / f"{case.id}.json").write_text(case_json(case), encoding="utf-8")
        if not out_dir.exists():
            staging.rename(out_dir)
        else:
            for name in names:
                (staging / name).replace(out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in names]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _load_file(file: Path) -> list[tuple[int | None, CaseRecord]]:
    """``(jsonl_line_or_None, case)`` for every case in one file."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseInputError(f"cannot read: {exc}", path=file) from exc
    if file.suffix in JSONL_SUFFIXES:
        return _load_jsonl(file, text)
    data = _parse_json(file, text) if file.suffix in JSON_SUFFIXES else _parse_yaml(file, text)
    items = data if isinstance(data, list) else [data]
    if not items:
        raise CaseInputError("the file holds an empty list, no cases", path=file)
    single = not isinstance(data, list)
    return [
        (None, _validate(item, file, None, None if single else index))
        for index, item in enumerate(items)
    ]


def _load_jsonl(file: Path, text: str) -> list[tuple[int | None, CaseRecord]]:
    out: list[tuple[int | None, CaseRecord]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CaseInputError(
                f"not valid JSON: {exc.msg} (column {exc.colno})", path=file, line=number
            ) from exc
        except RecursionError:
            raise CaseInputError(
                "not valid JSON: nested too deeply", path=file, line=number
            ) from None
        out.append((number, _validate(item, file, number, None)))
    if not out:
        raise CaseInputError("the file holds no cases", path=file)
    return out


def _parse_json(file: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CaseInputError(
            f"not valid JSON: {exc.msg} (column {exc.colno})", path=file, line=exc.lineno
        ) from exc
    except RecursionError:
        raise CaseInputError("not valid JSON: nested too deeply", path=file) from None


def _parse_yaml(file: Path, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CaseInputError(f"not valid YAML: {problem}", path=file, line=line) from exc


def _validate(item: Any, file: Path, line: int | None, index: int | None) -> CaseRecord:
    """One case record, or an error naming the case (id, else list position) and the field."""
    case_id = item.get("id") if isinstance(item, dict) else None
    if isinstance(case_id, str) and case_id:
        case = repr(case_id)
    elif index is not None:
        case = f"#{index}"
    else:
        case = None
    if not isinstance(item, dict):
        raise CaseInputError(
            f"a case must be an object (mapping), got {type(item).__name__}",
            path=file,
            line=line,
            case=case,
        )
    problem = case_id_problem(case_id)
    if problem is not None:
        raise CaseInputError(problem, path=file, line=line, case=case, field="id")
    try:
        return CaseRecord.model_validate(item)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise CaseInputError(
            f"{first['msg']}{more}", path=file, line=line, case=case, field=field
        ) from None


def load_case_arg(spec: str) -> CaseRecord:
    """The case that a ``--case`` argument names: a case file, or a bundled case by id.

    ``spec`` is read in this order:

    1. ``bundled:ID``: the bundled case ``ID``, whatever files exist.
    2. An existing file (or a folder holding one case): the case in it. A path always wins;
       when the case in it has the id of a bundled case but different content, a warning says
       so (results filed by case id would mix the two).
    3. A path (it has a case-file suffix or a path separator) that does not exist: an error.
    4. A bundled case id: that case. But when the current directory also holds ``ID.json``,
       ``ID.yaml`` or ``ID.yml`` with a *different* case of that id, the id names both, and that
       is an error saying how to pick one (``./ID.json`` or ``bundled:ID``); a file there with
       the same content is the same case.
    5. Anything else: an error.

    Raises:
        InputError: No such file or bundled case, a malformed case file, or an id that names
            both a bundled case and a different case file.
    """
    if spec.startswith(BUNDLED_PREFIX):
        wanted = spec[len(BUNDLED_PREFIX) :]
        bundled = _bundled_by_id().get(wanted)
        if bundled is None:
            raise InputError(f"no bundled case {wanted!r} (list them with 'medverify cases list')")
        return bundled
    path = Path(spec)
    if path.exists():  # a file, or a folder that holds one case
        case = load_case(path)
        shipped = _bundled_by_id().get(case.id)
        if shipped is not None and shipped != case and path.resolve().parent != _bundled_real():
            logger.warning(
                "%s holds case %r, the id of a bundled case with different content; using the file",
                path,
                case.id,
            )
        return case
    if path.suffix.lower() in CASE_SUFFIXES or "/" in spec or "\\" in spec:
        raise InputError("no such case file", path=path)
    bundled = _bundled_by_id()
    same_name = _case_files_named(spec)
    if spec in bundled:
        for file in same_name:
            if file.case.id == spec and file.case != bundled[spec]:
                raise InputError(
                    f"{spec!r} names both a bundled case and a different case in {file.path}; "
                    f"pass ./{file.path.name} for the file or {BUNDLED_PREFIX}{spec} for the "
                    f"bundled case"
                )
        return bundled[spec]
    hint = f"; did you mean ./{same_name[0].path.name}?" if same_name else ""
    raise InputError(
        f"no case file or bundled case named {spec!r} (list them with 'medverify cases list')"
        + hint
    )


class _NamedFile(NamedTuple):
    path: Path
    case: CaseRecord


def _case_files_named(case_id: str) -> list[_NamedFile]:
    """Readable one-case files ``<case_id>.json|.yaml|.yml`` in the current directory."""
    found = []
    for suffix in (".json", ".yaml", ".yml"):
        file = Path(f"{case_id}{suffix}")
        if not file.is_file():
            continue
        try:
            found.append(_NamedFile(file, load_case(file)))
        except InputError as exc:
            logger.debug("ignoring %s: %s", file, exc)
    return found


def _bundled_by_id() -> dict[str, CaseRecord]:
    return {case.id: case for case in load_bundled_cases()}


def _bundled_real() -> Path:
    return bundled_cases_dir().resolve()
