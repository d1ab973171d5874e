"""The README's code must run as written."""

import pathlib
import re

import jax.numpy as jnp

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart_runs_and_fits_the_line():
    text = README.read_text()
    code = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S).group(1)
    namespace = {}
    with jnp.printoptions():  # keep numpy print state untouched
        exec(compile(code, "README quickstart", "exec"), namespace)
    params = namespace["params"]
    final_loss = namespace["loss"](params, namespace["x"], namespace["y"])
    initial = {"w": jnp.zeros((3, 1)), "b": jnp.zeros(1)}
    assert final_loss < 1e-2 * namespace["loss"](initial, namespace["x"], namespace["y"])


def test_readme_gives_exactly_two_setup_commands_and_ci_runs_the_second():
    text = README.read_text()
    block = re.search(r"## Two commands\n.*?```bash\n(.*?)```", text, re.S).group(1)
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1] in ci
