"""A case file is untrusted data: hostile expressions and files are rejected and nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from verifier.case.loading import collect
from verifier.errors import CaseError
from verifier.language.parse import parse

CANARY = "/tmp/gradverify-canary-{tag}"

HOSTILE_EXPRESSIONS = [
    "__import__('os').system('touch {canary}')",
    "x.__class__.__mro__[1].__subclasses__()",
    "x.__class__",
    "().__class__.__base__.__subclasses__()",
    "open('{canary}', 'w')",
    "eval(\"open('{canary}', 'w')\")",
    "exec(\"open('{canary}', 'w')\")",
    "compile('1', 'f', 'eval')",
    "getattr(x, '__class__')",
    "globals()",
    "locals()['x']",
    "vars(x)",
    "__builtins__",
    "__builtins__.open('{canary}')",
    "sympify(\"__import__('os').system('touch {canary}')\")",
    "parse_expr('x')",
    "Function('f')(x)",
    "Symbol('x')",
    "lambda: 0",
    "(lambda: open('{canary}', 'w'))()",
    "[open('{canary}', 'w') for _ in (1,)]",
    "{{open('{canary}', 'w')}}",
    "f'{{open(\"{canary}\", \"w\")}}'",
    "x if open('{canary}', 'w') else x",
    "(y := open('{canary}', 'w'))",
    "sin(*[x])",
    "sin(**{{'x': 1}})",
    "sum(x, axis=open('{canary}'))",
    "x[open('{canary}')]",
    "x[0:open('{canary}')]",
    "einsum(open('{canary}'), x)",
    "einsum('__import__', x)",
    "gelu(x, approximate=open('{canary}'))",
    "gelu(x, approximate='__import__(\"os\")')",
    "leaky_relu(x, negative_slope=open('{canary}'))",
    "Piecewise((x, open('{canary}')), (x, True))",
    "Piecewise((open('{canary}'), x > 0), (x, True))",
    "reshape(x, shape=open('{canary}'))",
    "reshape(x, open('{canary}'))",
    "unsqueeze(x, open('{canary}'))",
    "sum(x, dim=open('{canary}'))",
    "leaky_relu(x, open('{canary}'))",
    "x[::open('{canary}')]",
    "x.T.__class__",
    "x.grad",
    "x.data",
    "x.numpy()",
    "sin.__call__(x)",
    "os.system('touch {canary}')",
    "subprocess.run(['touch', '{canary}'])",
    "ｅｖａｌ('1')",
    "ｏｐｅｎ('{canary}')",
    "x\u200b + 1",
    "x + 1\x00",
    "x ^ 2",
    "'x'",
    "b'x'",
    "1j",
    "True",
    "None",
    "...",
    "await x",
    "x or open('{canary}')",
    "not x",
    "x == x",
    "S('x')",
    "Integer(1)",
    "N(x)",
    "exp(x).func",
    "x.subs(x, 1)",
    "x.evalf()",
    "_",
    "_x",
]

HOSTILE_FILES = [
    "name: a\ninputs: {{x: !!python/object/apply:os.system ['touch {canary}']}}\nfunction: x\n",
    "!!python/object/new:os.system [touch {canary}]\n",
    "name: a\ninputs: {{x: 1}}\nfunction: !!python/name:os.system\n",
    "name: a\ninputs: {{x: !!python/object:subprocess.Popen {{args: [touch, {canary}]}}}}\nfunction: x\n",
    "name: a\ninputs: {{x: 1}}\nfunction: \"__import__('os').system('touch {canary}')\"\n",
    "name: a\ninputs: {{x: 1}}\ndefine: {{y: \"open('{canary}', 'w')\"}}\nfunction: y\n",
    "name: a\ninputs: {{__class__: 1}}\nfunction: x\n",
    "name: a\ninputs: {{x: 1}}\nfunction: x\nexpect: {{grad: {{x: \"open('{canary}', 'w')\"}}}}\n",
    "name: a\ninputs: {{x: 1}}\nfunction: x\nimpl: \"os.system('touch {canary}')\"\n",
    "name: a\ninputs: {{x: 1}}\nfunction: x\nimpl: \"builtins:__import__\"\n",
    "name: a\ninputs: {{x: 1}}\nfunction: x\nimpl: \"os:system\"\nimpl_args: [!!python/name:os.system ]\n",
    "name: a\ninputs: {{x: 1}}\nfunction: x\nimpl: \"os:system\"\nimpl_kwargs: {{a: !!python/object/apply:os.system [x]}}\n",
]


@pytest.mark.parametrize("template", HOSTILE_EXPRESSIONS)
def test_hostile_expression_is_rejected_and_nothing_runs(template):
    canary = Path(CANARY.format(tag=abs(hash(template))))
    canary.unlink(missing_ok=True)
    with pytest.raises(CaseError):
        parse(template.format(canary=canary), {"x"})
    assert not canary.exists()


@pytest.mark.parametrize("template", HOSTILE_FILES)
def test_hostile_file_is_rejected_and_nothing_runs(template, tmp_path):
    canary = tmp_path / "canary"
    path = tmp_path / "hostile.yaml"
    path.write_text(template.format(canary=canary))
    found = collect([path])
    assert not found.cases and len(found.errors) == 1 and isinstance(found.errors[0], CaseError)
    assert not canary.exists()


def test_impl_is_imported_only_when_its_case_runs(tmp_path):
    """impl is user code by design: loading or listing never imports it; running that case does."""
    canary = tmp_path / "imported"
    (tmp_path / "canary_impl.py").write_text(
        f"open({str(canary)!r}, 'w').close()\n\ndef f(x):\n    return x * 2\n")
    case_file = tmp_path / "c.yaml"
    case_file.write_text("name: a\ninputs: {x: 1.0}\nfunction: 2*x\nimpl: \"canary_impl:f\"\nchecks: [value]\n")
    found = collect([case_file])
    assert found.cases and not found.errors
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "verifier", "list", str(case_file)], check=True, capture_output=True)
    assert not canary.exists()
    from verifier.runner import verify_case

    assert verify_case(found.cases[0]).status == "pass"
    assert canary.exists()


def test_corpus_size():
    assert len(HOSTILE_EXPRESSIONS) + len(HOSTILE_FILES) >= 50


def test_no_eval_exec_or_sympify_in_the_package():
    import re

    root = Path(__file__).resolve().parent.parent / "verifier"
    pattern = re.compile(r"(^|[^_.a-zA-Z])(eval|exec)\(|sympify\(|parse_expr\(|lambdify\(")
    definition = re.compile(r"^\s*def eval\(")  # sympy's Function.eval classmethod is a definition, not a call
    offenders = [f"{p.name}:{i}" for p in root.glob("*.py") for i, line in enumerate(p.read_text().splitlines(), 1)
                 if pattern.search(line) and not definition.search(line)]
    assert not offenders
