from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_nb.stages.analysis import analyse
from mlops_nb.stages.plan import stage_key


@pytest.mark.parametrize(
    ("code", "inputs", "outputs"),
    [
        ("df = pd.read_csv(path)\ndf['x'] = df.a * 2", ("pd", "path"), ("df",)),
        ("df['x'] = 1", ("df",), ("df",)),  # subscript mutation of an input makes it an output
        ("obj.attr = value", ("value", "obj"), ("obj",)),
        ("model.fit(X, y)", ("model", "X", "y"), ("model",)),  # a method call for its effect
        ("y = df.head()", ("df",), ("y",)),  # a call whose result is used is not a mutation
        ("df.dropna(inplace=True)", ("df",), ("df",)),
        ("total += x", ("x", "total"), ("total",)),
        ("for i in range(n):\n    acc.append(i)", ("range", "n", "acc"), ("i", "acc")),  # builtins: if shadowed
        ("a, (b, *c) = t", ("t",), ("a", "b", "c")),
        ("with open(p) as f:\n    text = f.read()", ("open", "p"), ("f", "text")),
        ("vals = [v * k for v in data]", ("k", "data"), ("vals",)),
        ("def f(a):\n    return a + offset\nres = f(3)", ("offset",), ("res",)),
        ("x = 1\ny = x + z", ("z",), ("x", "y")),  # x is assigned before it is read
        ("del junk", (), ("junk",)),
        ("%time y = x + 1", ("x",), ("y",)),  # IPython syntax goes through IPython's transformer
        ("!echo hi\nz = w", ("w",), ("z",)),
    ],
)
def test_inputs_and_outputs_are_inferred(code: str, inputs: tuple, outputs: tuple) -> None:
    analysis = analyse(code)
    assert analysis.inputs == inputs
    assert analysis.outputs == outputs


def test_imports_and_definitions_are_restored_by_code_not_values() -> None:
    analysis = analyse(
        "import numpy as np\nfrom sklearn.linear_model import LogisticRegression as LR\n"
        "def helper(x):\n    return np.log(x)\nclass Box:\n    pass\nresult = helper(2)"
    )
    assert analysis.imports == ("np", "LR")
    assert analysis.definitions == ("helper", "Box")
    assert analysis.outputs == ("result",)
    restore = analysis.restore_code
    assert "import numpy as np" in restore and "def helper" in restore and "result" not in restore


def test_a_syntax_error_is_raised_like_python() -> None:
    with pytest.raises(SyntaxError):
        analyse("x = = 1")


names = st.sampled_from(["a", "b", "df", "model", "x1"])
numbers = st.integers(-1000, 1000)
layouts = st.sampled_from(["{t} = {a} + {n}", "{t}={a}+{n}", "{t} = ({a} + {n})", "{t}  =  {a}  +  {n}  # note"])
noise = st.sampled_from(["", "\n", "# a comment\n", "\n\n# another\n\n"])


@given(t=names, a=names, n=numbers, layout=layouts, other=layouts, before=noise, after=noise)
def test_stage_key_ignores_formatting(t: str, a: str, n: int, layout: str, other: str, before: str, after: str) -> None:
    first = layout.format(t=t, a=a, n=n)
    second = before + other.format(t=t, a=a, n=n) + "\n" + after
    key = lambda code: stage_key(analyse(code).normalised, {a: "fp"})  # noqa: E731
    assert key(first) == key(second)


@given(t=names, a=names, n=numbers, m=numbers, layout=layouts)
def test_stage_key_changes_with_semantics(t: str, a: str, n: int, m: int, layout: str) -> None:
    key = lambda code, fp="fp": stage_key(analyse(code).normalised, {a: fp})  # noqa: E731
    code = layout.format(t=t, a=a, n=n)
    if n != m:
        assert key(code) != key(layout.format(t=t, a=a, n=m))  # another constant
    assert key(code) != key(code.replace("+", "-"))  # another operator
    assert key(code) != key(code, fp="changed")  # an input's value changed
    assert stage_key("c", {"C": "1"}) != stage_key("c", {"C": "2"})  # a parameter is an input like any other
    assert stage_key("c", {}, files={"d.csv": "1"}) != stage_key("c", {}, files={"d.csv": "2"})  # a file read
    assert stage_key("c", {}, modules={"helpers": "1"}) != stage_key("c", {}, modules={"helpers": "2"})
    assert stage_key("c", {}, context={"store": "a"}) != stage_key("c", {}, context={"store": "b"})


@pytest.mark.parametrize(
    ("code", "opaque"),
    [
        ("out = !cat b.txt", "runs a shell command"),
        ("%run script.py", "runs the magic %run"),
        ("x = eval(text)", "runs code from a string (eval)"),
        ("import subprocess\nsubprocess.run(['ls'])", "runs a process"),
        ("os.system('make')", "runs a shell command"),
        ("for f in files:\n    d = pd.read_csv(f)", "path computed at run time: pd.read_csv(f)"),
        ("d = pd.read_csv(cfg.path)", "path computed at run time"),
        ("d = pd.read_csv('https://example.com/d.csv')", "reads a remote URL"),
    ],
)
def test_cells_whose_inputs_cannot_be_seen_say_why(code: str, opaque: str) -> None:
    assert any(opaque in reason for reason in analyse(code).opaque), analyse(code).opaque


@pytest.mark.parametrize(
    "code",
    [
        "model.run(x)",  # a method called run is not a subprocess
        "d = pd.read_csv(io.StringIO(text))",  # a buffer, not a path
        "with open('c.txt') as f:\n    t = json.load(f)",  # a file object the analysis opened itself
        "d = pd.read_csv(path)",  # an input: its value is looked at when the stage runs
        "%time y = f(x)\n%matplotlib inline",
    ],
)
def test_cells_whose_inputs_are_seen_are_not_opaque(code: str) -> None:
    assert analyse(code).opaque == ()


def test_file_paths_are_found_and_built_from_inputs() -> None:
    from mlops_nb.stages.analysis import evaluate_path

    analysis = analyse("d = pd.read_csv(os.path.join(DATA, f'{day}.csv'))\nd.to_csv('out.csv')\nm = np.load(p)")
    assert analysis.path_names == ("p",)
    assert analysis.write_only == ("out.csv",)
    (expression,) = analysis.path_exprs
    assert evaluate_path(expression, {"DATA": "data", "day": "mon"}) == "data/mon.csv"
    assert evaluate_path(expression, {"DATA": 3.5, "day": "mon"}) is None  # not a path: the stage is not cached
    assert evaluate_path(expression, {"day": "mon"}) is None


@pytest.mark.parametrize(
    ("code", "seeds"),
    [
        ("np.random.seed(0)\nx = np.random.rand()", ("numpy",)),
        ("import random\nrandom.seed(1)\nx = random.random()", ("random",)),
        ("x = np.random.rand()\nnp.random.seed(0)", ()),  # drew before it seeded
        ("rng.seed(0)\nx = 1", ()),
    ],
)
def test_cells_that_seed_first_thing(code: str, seeds: tuple) -> None:
    assert analyse(code).seeds == seeds
