"""Code problems through the sandboxed executor: HumanEval's canonical solutions all pass,
obviously wrong ones all fail; a Perl problem runs with `perl`; bad problem files are clear
errors."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from domainllm.evals.passk import pass_at_k
from domainllm.evals.problems import ProblemError, humaneval_problems, read_problems

pytestmark = pytest.mark.slow


def _passed(problems, completions) -> list[int]:
    with ThreadPoolExecutor(4) as pool:
        return [int(o.passed) for o in pool.map(lambda pc: pc[0].check(pc[1]), zip(problems, completions, strict=True))]


def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail() -> None:
    problems = humaneval_problems()
    assert len(problems) == 164
    right = _passed(problems, [p.extra["canonical_solution"] for p in problems])
    assert sum(pass_at_k([1] * len(right), right, 1)) / len(right) == 1.0
    wrong = _passed(problems, ["    raise NotImplementedError\n"] * len(problems))
    assert sum(pass_at_k([1] * len(wrong), wrong, 1)) == 0.0


def test_a_perl_problem_and_bad_problem_files(tmp_path: Path) -> None:
    perl = {"id": "add", "language": "perl", "prompt": "sub add {\n", "tests": "use Test::More;\nis(add(2, 3), 5);\ndone_testing;"}
    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps(perl) + "\n")
    (problem,) = read_problems(str(path))
    assert problem.check("    my ($x, $y) = @_;\n    return $x + $y;\n}\n").passed
    assert not problem.check("    return 4;\n}\n").passed
    for bad, message in (({**perl, "language": "cobol"}, "field `language` is 'cobol'"),
                         ({**perl, "tests": ""}, "field `tests` is missing"),
                         ({k: v for k, v in perl.items() if k != "prompt"}, "field `prompt` is missing")):  # fmt: skip
        path.write_text(json.dumps(bad) + "\n")
        with pytest.raises(ProblemError, match=f"problems.jsonl line 1: {message}"):
            read_problems(str(path))
    path.write_text(json.dumps(perl) + "\n" + json.dumps(perl) + "\n")
    with pytest.raises(ProblemError, match="line 2: problem id 'add' appears twice"):
        read_problems(str(path))
    path.write_text("")
    with pytest.raises(ProblemError, match="holds no problems"):
        read_problems(str(path))


REFERENCE = {
    "perl/add": "    return $x + $y;\n}\n",
    "perl/max_of": "    my $m = shift @n;\n    for (@n) { $m = $_ if $_ > $m }\n    return $m;\n}\n",
    "perl/reverse_words": "    return join ' ', reverse split ' ', $s;\n}\n",
    "perl/count_vowels": "    return scalar(() = $s =~ /[aeiou]/gi);\n}\n",
    "perl/is_palindrome": "    return $s eq reverse($s) ? 1 : 0;\n}\n",
    "perl/sum_hash_values": "    my $t = 0;\n    $t += $_ for values %$h;\n    return $t;\n}\n",
    "perl/uniq_sorted": "    my %seen;\n    return sort grep { !$seen{$_}++ } @items;\n}\n",
    "perl/word_count": "    my %c;\n    $c{$_}++ for split ' ', $text;\n    return \\%c;\n}\n",
}


def test_the_shipped_perl_problems_are_solvable_and_not_trivially_passed() -> None:
    from importlib.resources import files

    problems = read_problems(str(files("domainllm.evals") / "sets" / "perl-problems.jsonl"))
    assert {p.id for p in problems} == set(REFERENCE)
    assert _passed(problems, [REFERENCE[p.id] for p in problems]) == [1] * len(problems)
    assert _passed(problems, ["    return;\n}\n"] * len(problems)) == [0] * len(problems)
