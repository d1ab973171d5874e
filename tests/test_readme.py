"""The README's code must run as written."""

import contextlib
import inspect
import io
import pathlib
import re

import jax.numpy as jnp

import gradtx

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_block(heading):
    """The first Python code block under the README's ``## heading``."""
    text = README.read_text()
    return re.search(rf"## {re.escape(heading)}\n.*?```python\n(.*?)```", text, re.S).group(1)


def _run_printing(code, name, namespace):
    """Run README code; return the losses it prints (``step N  loss L`` lines)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), jnp.printoptions():  # numpy print state untouched
        exec(compile(code, name, "exec"), namespace)
    lines = out.getvalue().splitlines()
    assert lines and all(re.fullmatch(r"step +\d+  loss \S+", line) for line in lines), lines
    return [float(line.split()[-1]) for line in lines]


def _assert_falls(losses):
    assert len(losses) >= 3
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 1e-2 * losses[0], losses


def test_readme_quickstart_runs_prints_a_falling_loss_and_fits_the_line():
    text = README.read_text()
    code = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S).group(1)
    namespace = {}
    printed = _run_printing(code, "README quickstart", namespace)
    _assert_falls(printed)
    params = namespace["params"]
    final_loss = namespace["loss"](params, namespace["x"], namespace["y"])
    initial = {"w": jnp.zeros((3, 1)), "b": jnp.zeros(1)}
    first = namespace["loss"](initial, namespace["x"], namespace["y"])
    assert printed[0] == float(f"{float(first):.2e}")
    assert final_loss < 1e-2 * first


def test_readme_gives_exactly_two_setup_commands_and_ci_runs_the_second():
    text = README.read_text()
    block = re.search(r"## Two commands\n.*?```bash\n(.*?)```", text, re.S).group(1)
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_readme_nnx_optimizer_example_trains_a_linear_model_and_prints_a_falling_loss():
    code = _python_block("With Flax NNX")
    assert len(code.strip().splitlines()) <= 22
    namespace = {}
    printed = _run_printing(code, "README nnx example", namespace)
    _assert_falls(printed)
    model, x, y = (namespace[k] for k in ("model", "x", "y"))
    assert float(jnp.mean((model(x) - y) ** 2)) < 1e-2 * printed[0]


def test_readme_clipped_adamw_with_schedule_example_warms_up_and_clips():
    code = _python_block("Clipping and a schedule")
    namespace = {"gradtx": gradtx}
    exec(compile(code, "README chain example", "exec"), namespace)
    opt = namespace["opt"]
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    huge = {"w": jnp.array([1e3, -1e3, 1e3])}
    updates, state = opt.update(huge, state, params)
    assert float(jnp.abs(updates["w"]).max()) == 0.0  # the warmup starts at 0
    for _ in range(10):
        updates, state = opt.update(huge, state, params)
    # 10 steps into a 1000-step warmup to 1e-3: Adam moves each weight by about lr.
    assert 0 < float(jnp.abs(updates["w"]).max()) < 2e-5


def _shape(tx):
    """A transform's recipe as names: chain parts, precondition's two sides, a wrapper's inner."""
    if tx.combinator == "chain":
        return "chain(" + ", ".join(_shape(c) for c in tx.children) + ")"
    if tx.combinator == "precondition":
        direction, by = tx.children
        return f"precondition({_shape(direction)}, by={_shape(by)})"
    if tx.children:
        return tx.name + "(" + ", ".join(_shape(c) for c in tx.children) + ")"
    return tx.name


# Arguments without a default besides the learning rate.
_OTHER_REQUIRED = {
    "dpsgd": {"l2_norm_clip": 1.0, "noise_multiplier": 1.0, "seed": 0},
    # an inner optimizer that the table writes as "inner"
    "snoo": {
        "inner": gradtx.GradientTransformation(*gradtx.identity(), name="inner"),
        "sync_period": 2,
    },
}


def test_readme_every_optimizer_table_lists_each_recipe_as_built():
    text = README.read_text()
    section = re.search(r"## Every optimizer\n(.*?)\n## ", text, re.S).group(1)
    rows = re.findall(r"^\| `(\w+)` \| `(.*)` \|$", section, re.M)
    assert len(rows) >= 45
    for name, recipe in rows:
        factory = getattr(gradtx, name)
        required = (
            {"learning_rate": 0.1}
            if "learning_rate" in inspect.signature(factory).parameters
            else {}
        )
        required.update(_OTHER_REQUIRED.get(name, {}))
        try:
            opt = factory(**required)
        except TypeError:  # learning_rate has a default
            opt = factory()
        built = _shape(opt)
        if opt.combinator == "chain":
            built = built[len("chain(") : -1]
        assert built == recipe, name


def test_readme_switching_from_optax_continues_an_optax_checkpoint(tmp_path):
    import jax
    import numpy as np
    import optax
    import orbax.checkpoint as ocp

    params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([0.3])}
    grads_of = lambda p: jax.tree.map(lambda x: 2 * x - 0.1, p)  # noqa: E731
    reference = optax.adam(1e-3)
    with jax.numpy_dtype_promotion("standard"):  # optax is written for standard promotion
        optax_state = reference.init(params)
        for _ in range(3):
            updates, optax_state = reference.update(grads_of(params), optax_state, params)
            params = optax.apply_updates(params, updates)
        expected, _ = reference.update(grads_of(params), optax_state, params)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "opt_state", optax_state)
    checkpointer.wait_until_finished()
    namespace = {
        "optax": optax,
        "ocp": ocp,
        "gradtx": gradtx,
        "params": params,
        "grads": grads_of(params),
        "ckpt_dir": tmp_path,
    }
    exec(compile(_python_block("Switching from optax"), "README optax", "exec"), namespace)
    for mine, theirs in zip(jax.tree.leaves(namespace["updates"]), jax.tree.leaves(expected)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6)
    assert int(gradtx.tree_get(namespace["state"], "preconditioner.count")) == 4
