"""optax's own test suite, run against gradtx.

optax ships its tests in its wheel.  This helper runs a selection of them with
every optax module the test imports replaced by a proxy: looking a name up on
the proxy gives gradtx's object when gradtx exports that name, and optax's
object otherwise.  So `alias.adam`, `base.GradientTransformation`,
`_masking.masked` or `optax.tree.get` in an optax test mean gradtx's adam,
GradientTransformation, masked and tree.get when gradtx has them; names gradtx
lacks (optax's private state classes, optimizers gradtx does not offer) stay
optax's.

How the substitution works: the test module's source is executed in a fresh
module whose `__import__` is wrapped.  An import of an optax module gives back
the proxy, so names bound at import time -- including the parameter tables that
`parameterized` builds when the module body runs -- already point at gradtx.
Test modules (`*_test`) and optax's `test_utils` are returned unproxied.

`run_files` runs test files in a pytest subprocess, so nothing of the
substitution leaks into the rest of gradtx's suite; tests/test_optax_suite.py
runs the quick files together in one subprocess (starting one costs more than
most of these files' tests), gives each slow file (or part of one) its own
subprocess and test, which xdist can place on any worker; each of these
tests also fails on an exclusion of its files that left out no test (stale
after a rename).
A baseline (optax's own outcomes, to tell a gradtx failure from one of
optax's) runs in the same subprocess, after all of gradtx's tests: each file
is loaded a second time without the substitution, and its tests run after
their substituted twins, each skipped before setup where its twin passed on
gradtx unless every test is asked for.
`python -m tests.optax_suite` prints per-file counts for gradtx and for optax
itself.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import os
import pathlib
import subprocess
import sys
import tempfile
import types
import xml.etree.ElementTree as ElementTree

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Test files, relative to the optax package; the first group is quick enough
# for every run, the second is the slow tier.
QUICK_FILES = (
    "_src/base_test.py",
    "_src/combine_test.py",
    "_src/lookahead_test.py",
    "_src/transform_test.py",
    "_src/update_test.py",
    "microbatching/_microbatching_test.py",
    "schedules/_inject_test.py",
    "transforms/_adding_test.py",
    "transforms/_clipping_test.py",
    "transforms/_combining_test.py",
    "transforms/_conditionality_test.py",
    "transforms/_constraining_test.py",
    "transforms/_freezing_test.py",
    "transforms/_masking_test.py",
    "contrib/_complex_valued_test.py",
)
SLOW_FILES = (
    "_src/alias_test.py",
    "_src/float64_test.py",
    "_src/sharding_test.py",
    "schedules/_schedule_test.py",
    "transforms/_accumulation_test.py",
    "contrib/_galore_test.py",
)
FILES = QUICK_FILES + SLOW_FILES
# Files run in several parts, each in its own subprocess (so its own test, which
# xdist can place on any worker): part i of n runs every n-th of the file's tests.
PARTS = {"_src/alias_test.py": 4}

# module::Class::test (a trailing * matches every name it starts) -> why it
# is not run against gradtx.  Each is a
# deliberate gradtx convention or a test of an optax-only helper that the
# substitution mixes with gradtx's classes.
_INT_GRADIENTS = (
    "feeds integer params to adam; gradtx's transforms that keep moments refuse integer "
    "leaves (optax's moments start in int32 and turn float after one step)"
)
_ISINSTANCE = (
    "checks isinstance against optax's GradientTransformationExtraArgs, or that "
    "optax's own helper (stateless, with_extra_args_support, which gradtx does "
    "not offer) returns gradtx's class; gradtx cannot make its objects instances "
    "of optax's NamedTuple without importing optax"
)
_APPLY_IF_FINITE = (
    "expects apply_if_finite to keep skipping after max_consecutive_errors "
    "bad steps; gradtx raises FloatingPointError then (README conventions)"
)
_ERROR_WORDING = (
    "fails on optax itself (jax 0.10 no longer says 'Dict key mismatch'); "
    "gradtx raises the ValueError too, naming the transform and the leaf"
)
_REAL_STATE_FOR_COMPLEX = (
    "stores a complex parameter's moment in a real dtype (bf16 or "
    "float32); gradtx refuses at init, since the imaginary part would "
    "be lost at the first update"
)
_DEPRECATED_V1 = (
    "expects optax's DeprecationWarning from optimistic_adam; gradtx keeps "
    "optimistic_adam (optax's math, a number as learning rate) without a warning "
    "and offers optimistic_adam_v2 beside it"
)
_EXTRA_ARGS_DROPPED = (
    "optax's MultiSteps wraps a transform that is not its own "
    "GradientTransformationExtraArgs with with_extra_args_support, which drops "
    "value=, so polyak_sgd never sees the loss; gradtx's accumulate_gradients "
    "forwards it (tests/test_wrappers.py)"
)
EXCLUDED: dict[str, str] = {
    **{
        f"alias_test::AliasTest::{name}": _DEPRECATED_V1
        for name in (
            "test_gradient_accumulation40",
            "test_gradient_accumulation41",
            "test_optimization80",
            "test_optimization82",
            "test_optimizers_accept_extra_args20",
            "test_optimizers_can_be_wrapped_in_inject_hyperparams20",
            "test_preserve_dtype40",
            "test_preserve_dtype41",
            *(f"test_state_shape_dtype_shard_stability{i}" for i in range(120, 124)),
        )
    },
    "alias_test::AliasTest::test_gradient_accumulation46": _EXTRA_ARGS_DROPPED,
    "alias_test::AliasTest::test_gradient_accumulation47": _EXTRA_ARGS_DROPPED,
    # test_explicit_dtype's product: complex64 params with a bfloat16 or float32 state
    # dtype, for sgd_mom, adam and adamw.
    **{
        f"alias_test::AliasTest::test_explicit_dtype{i}": _REAL_STATE_FOR_COMPLEX
        for i in range(24, 30)
    },
    "base_test::ExtraArgsTest::test_isinstance": _ISINSTANCE,
    "base_test::StatelessTest::test_init_returns_emptystate": _ISINSTANCE,
    "base_test::StatelessWithTreeMapTest::test_init_returns_emptystate": _ISINSTANCE,
    "combine_test::ExtraArgsTest::test_extra_args": _ISINSTANCE + "; " + _INT_GRADIENTS,
    "combine_test::ExtraArgsTest::test_extra_args_chaining": _ISINSTANCE,
    "_combining_test::ExtraArgsTest::test_extra_args": _ISINSTANCE + "; " + _INT_GRADIENTS,
    "_combining_test::ExtraArgsTest::test_extra_args_chaining": _ISINSTANCE,
    "_inject_test::InjectHyperparamsTest::test_hyperparam_default_dtype_*": (
        "expects injected hyperparameters in the params' dtype (bf16); gradtx keeps them in "
        "float32 (float64 under x64) so that b2=0.999 does not round to 1 (README conventions)"
    ),
    "_adding_test::AddingTest::test_none_argument": (
        "passes the int 0 as add_decayed_weights' state; gradtx checks the state's type"
    ),
    "_conditionality_test::ConditionalityTest::test_apply_if_finite_pmap": _APPLY_IF_FINITE,
    "_conditionality_test::ConditionalityTest::test_apply_if_finite_sgd": _APPLY_IF_FINITE,
    "_conditionality_test::ConditionalityTest::test_apply_if_finite_sgd_extra_args": (
        _APPLY_IF_FINITE
    ),
    "_conditionality_test::ConditionalityTest::test_apply_if_finite_stateful_sgd": (
        _APPLY_IF_FINITE
    ),
    "_clipping_test::ClippingTest::test_clip_by_block_rms": (
        "fails on optax itself: its 7-place check of a float32 RMS that comes out one ulp "
        "below 1; gradtx computes optax's u / (rms / threshold) bit for bit"
    ),
    "_freezing_test::FreezeTest::test_bad_structure_raises": _ERROR_WORDING,
    "_freezing_test::SelectiveTransformTest::test_selective_bad_structure": _ERROR_WORDING,
    "_masking_test::MaskedTest::test_masked_state_structure": (
        "reads optax's private layout of a masked sgd state: a chain state indexed as a "
        "tuple (gradtx: ChainState(states)) with optax's MaskedNode where gradtx keeps None"
    ),
    "transform_test::TransformTest::test_lion_invalid_mode_raises": (
        "expects the invalid mode to raise at update; gradtx checks it when scale_by_lion is "
        "built, so the ValueError comes one line earlier, outside the test's assertRaises"
    ),
    "_masking_test::MaskedTest::test_tree_map_params": (
        "maps over the masked state with is_leaf=optax's MaskedNode; gradtx keeps None for "
        "unselected leaves"
    ),
    **{
        f"_galore_test::GaLoreTest::{name}": (
            "reads galore's state by optax's layout: the chain state indexed as a tuple "
            "(state[0]; gradtx: ChainState(states)) and the base state as optax's "
            "ScaleByAdamState(mu, nu) (gradtx's Adam step: PreconditionState)"
        )
        for name in (
            "test_3d_attention_weights_with_dimension_numbers",
            "test_3d_memory_reduction_with_dimension_numbers",
            "test_dimension_numbers_right_projection",
            "test_left_vs_right_projection_state_shapes*",
            "test_memory_reduction_vs_full_moments",
            "test_mu_dtype_controls_moment_dtype",
            "test_projector_orthonormality_after_update",
            "test_projector_update_gap_behavior",
            "test_projector_updates_when_gap_is_one",
            "test_rank_is_clipped_to_min_dimension",
        )
    },
}


# ---------------------------------------------------------------------------
# The proxies.


def _is_test_module(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf.endswith("_test") or leaf == "test_utils"


def _gradtx_namespace(optax_name: str):
    """The gradtx namespace whose names stand in for those of an optax module."""
    import gradtx

    if optax_name in ("optax.tree", "optax.tree_utils") or optax_name.startswith(
        "optax.tree_utils."
    ):
        return getattr(gradtx, "tree", None)
    if optax_name == "optax.microbatching" or optax_name.startswith("optax.microbatching."):
        return gradtx.microbatching
    if optax_name.startswith(
        (
            "optax.losses",
            "optax.projections",
            "optax.second_order",
            "optax.perturbations",
            "optax.assignment",
        )
    ):
        return None
    return gradtx


# optax's type aliases that tests compare with a signature's annotation.
_ANNOTATION_ALIASES = ("ScalarOrSchedule", "Schedule")


class OptaxProxy(types.ModuleType):
    """An optax module whose names resolve to gradtx's where gradtx has them."""

    def __init__(self, module: types.ModuleType):
        super().__init__(module.__name__)
        object.__setattr__(self, "_proxied", module)
        object.__setattr__(self, "_gradtx", _gradtx_namespace(module.__name__))

    def __getattr__(self, name: str):
        module = object.__getattribute__(self, "_proxied")
        namespace = object.__getattribute__(self, "_gradtx")
        try:
            value = getattr(module, name)
        except AttributeError:
            full = f"{module.__name__}.{name}"
            value = importlib.import_module(full)  # a submodule not yet imported
        if isinstance(value, types.ModuleType):
            return proxy(value)
        if namespace is not None and name in _ANNOTATION_ALIASES:
            # gradtx's modules postpone annotations, so a signature shows the alias's
            # name; optax's tests compare a learning_rate annotation with the alias.
            return name
        if namespace is not None and not name.startswith("_"):
            replacement = getattr(namespace, name, None)
            if replacement is not None and not isinstance(replacement, types.ModuleType):
                return replacement
        return value

    def __dir__(self):
        return dir(object.__getattribute__(self, "_proxied"))


def proxy(module: types.ModuleType) -> types.ModuleType:
    name = module.__name__
    if name.split(".")[0] != "optax" or _is_test_module(name):
        return module
    return OptaxProxy(module)


def _proxying_import(name, globals=None, locals=None, fromlist=(), level=0):
    module = builtins.__import__(name, globals, locals, fromlist, level)
    if level == 0 and name.split(".")[0] == "optax":
        return proxy(module)
    return module


def load_test_module(dotted: str, substitute: bool = True) -> types.ModuleType:
    """Executes optax's test module `dotted`, its optax imports proxied if `substitute`."""
    spec = importlib.util.find_spec(dotted)
    module = types.ModuleType(dotted)
    module.__file__ = spec.origin
    if substitute:
        patched = dict(vars(builtins))
        patched["__import__"] = _proxying_import
        module.__dict__["__builtins__"] = patched
    source = pathlib.Path(spec.origin).read_text()
    exec(compile(source, spec.origin, "exec"), module.__dict__)
    return module


# ---------------------------------------------------------------------------
# Running a file.


@dataclasses.dataclass
class Result:
    file: str
    passed: list[str]
    failed: dict[str, str]
    excluded: list[str]
    skipped: list[str] = dataclasses.field(default_factory=list)
    # The same file's tests on optax itself, where run_files ran a baseline.
    baseline: Result | None = None


def _dotted(file: str) -> str:
    return "optax." + file[: -len(".py")].replace("/", ".")


def _wrapper_name(file: str, substitute: bool = True) -> str:
    name = "test_" + _dotted(file).replace(".", "_")
    return name if substitute else name + "_on_optax"


_WRAPPER = """\
from tests.optax_suite import load_test_module as _load

_module = _load({dotted!r}, substitute={substitute!r})
globals().update({{k: v for k, v in vars(_module).items() if not k.startswith("__")}})
"""

# The skip reason of a baseline test whose twin passed on gradtx.
_NOT_NEEDED = "optax_suite: passed on gradtx, so not run on optax"

_CONFTEST = """\
import pytest

EXCLUDED = {excluded!r}
PART = {part!r}
# Each baseline module (an optax test file, not substituted) -> its twin on gradtx.
TWINS = {twins!r}
EVERY = {every!r}
NOT_NEEDED = {not_needed!r}
_ran = set()
_unsure = set()  # gradtx's tests that failed or skipped, a subtest included


def _matches(test, key):
    if key.endswith("*"):
        return test.startswith(key[:-1])
    return test == key


def _excluded(item):
    module = item.module.__name__
    test = item.nodeid.split("::", 1)[1]
    return any(module == m and _matches(test, t) for m, t in EXCLUDED)


def _twin(item):
    module, test = item.nodeid.split("::", 1)
    return TWINS[module[: -len(".py")]] + ".py::" + test


def pytest_collection_modifyitems(config, items):
    baseline = [item for item in items if item.module.__name__ in TWINS]
    items[:] = [item for item in items if item.module.__name__ not in TWINS]
    dropped = [item for item in items if _excluded(item)]
    items[:] = [item for item in items if not _excluded(item)]
    with open("excluded.txt", "w") as out:
        out.writelines(item.nodeid + "\\n" for item in dropped)
    part, parts = PART
    dropped += items[:]
    items[:] = items[part::parts]
    dropped = [item for item in dropped if item not in items]
    if not EVERY:
        selected = {{item.nodeid for item in items}}
        dropped += [item for item in baseline if _twin(item) not in selected]
        baseline = [item for item in baseline if _twin(item) in selected]
    # After all of gradtx's tests, so that each knows how its twin did there.
    items += baseline
    config.hook.pytest_deselected(items=dropped)


def pytest_runtest_logreport(report):
    _ran.add(report.nodeid)
    if report.failed or report.skipped:
        _unsure.add(report.nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before pytest sets up the test's class and fixtures, as a skip mark does.
    if not EVERY and item.module.__name__ in TWINS:
        twin = _twin(item)
        if twin in _ran and twin not in _unsure:
            pytest.skip(NOT_NEEDED)
"""


def _exclusions(files) -> list[tuple[str, str]]:
    """(wrapper module, Class::test prefix) for each exclusion among `files`."""
    by_short = {_dotted(f).rsplit(".", 1)[-1]: _wrapper_name(f) for f in files}
    out = []
    for key in EXCLUDED:
        short, test = key.split("::", 1)
        if short in by_short:
            out.append((by_short[short], test))
    return out


def run_files(files, timeout: float = 1800, part=(0, 1), baseline: str = "") -> dict[str, Result]:
    """Runs optax test files in one pytest subprocess; outcomes per file.

    ``part``: ``(i, n)`` runs the i-th of every n tests left after the exclusions
    (``excluded`` still lists every exclusion).
    ``baseline``: also runs the files' tests on optax itself (each Result's
    ``baseline``), in the same process after all of gradtx's: ``"unsure"`` those of
    the part that failed or skipped on gradtx, ``"all"`` every test of the files.
    """
    assert baseline in ("", "unsure", "all"), baseline
    twins = {_wrapper_name(f, substitute=False): _wrapper_name(f) for f in files if baseline}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        wrappers = {}  # wrapper module -> (file, substituted)
        for substitute in (True, False) if baseline else (True,):
            for file in files:
                name = _wrapper_name(file, substitute)
                wrappers[name] = (file, substitute)
                (tmp / f"{name}.py").write_text(
                    _WRAPPER.format(dotted=_dotted(file), substitute=substitute)
                )
        (tmp / "conftest.py").write_text(
            _CONFTEST.format(
                excluded=_exclusions(files),
                part=tuple(part),
                twins=twins,
                every=baseline == "all",
                not_needed=_NOT_NEEDED,
            )
        )
        (tmp / "pytest.ini").write_text("[pytest]\n")
        junit = tmp / "junit.xml"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        # optax's tests are absl tests that use no pytest plugin; the installed ones
        # would cost each run about 1.4 s CPU at startup (hypothesis's 1 s, jaxtyping's).
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={junit}",
                "--rootdir",
                str(tmp),
                "-c",
                str(tmp / "pytest.ini"),
                *(f"{name}.py" for name in wrappers),
            ],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if not junit.exists():
            raise RuntimeError(f"pytest produced no report\n{proc.stdout}\n{proc.stderr}")
        results = {f: Result(f, [], {}, []) for f in files}
        if baseline:
            for result in results.values():
                result.baseline = Result(result.file, [], {}, [])

        def result_of(wrapper):
            file, substitute = wrappers[wrapper]
            return results[file] if substitute else results[file].baseline

        dropped = tmp / "excluded.txt"
        for nodeid in dropped.read_text().splitlines() if dropped.exists() else []:
            wrapper, test = nodeid.split("::", 1)
            result_of(wrapper[: -len(".py")]).excluded.append(test)
        for case in ElementTree.parse(junit).getroot().iter("testcase"):
            classname = case.get("classname") or ""
            wrapper = classname.split(".", 1)[0]
            if wrapper not in wrappers:  # a collection error carries the file in its name
                # The longest match: a baseline module's name contains its twin's.
                wrapper = max(
                    (w for w in wrappers if w in classname or w in (case.get("name") or "")),
                    key=len,
                )
            result = result_of(wrapper)
            name = f"{classname.rsplit('.', 1)[-1]}::{case.get('name')}"
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            skipped = case.find("skipped")
            if problem is not None:
                result.failed[name] = (problem.get("message") or "")[:300]
            elif skipped is None:
                result.passed.append(name)
            elif skipped.get("message") != _NOT_NEEDED:
                result.skipped.append(name)
    return results


def main(argv: list[str]) -> int:
    baseline = "--no-baseline" not in argv
    argv = [a for a in argv if a != "--no-baseline"]
    files = [f for f in FILES if not argv or any(a in f for a in argv)]
    ours = run_files(files, baseline="all" if baseline else "")
    total_failed = 0
    for file in files:
        r = ours[file]
        line = (
            f"{file}: gradtx passed {len(r.passed)} failed {len(r.failed)} "
            f"excluded {len(r.excluded)}"
        )
        if baseline:
            t = r.baseline
            line += f"; optax passed {len(t.passed)} failed {len(t.failed)}"
            for name in sorted(set(t.passed) - set(r.passed) - set(r.failed) - set(r.excluded)):
                line += f"\n    SKIPPED on gradtx, passed on optax: {name}"
                total_failed += 1
        print(line, flush=True)
        for name, message in r.failed.items():
            first = message.splitlines()[0] if message else ""
            print(f"    FAILED {name}: {first}", flush=True)
        total_failed += len(r.failed)
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
