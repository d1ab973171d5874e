"""GradientTransformation: optax's constructor and tuple protocol, and a recipe that describes itself."""

import jax
import jax.numpy as jnp

import gradtx


def test_gradtx_transform_unpacks_like_optax_named_tuple():
    opt = gradtx.sgd(0.1)
    init, update = opt
    assert init is opt.init and update is opt.update
    assert opt[0] is opt.init and len(opt) == 2


def test_adam_repr_shows_the_recipe_with_hyperparameters():
    text = repr(gradtx.adam(1e-3))
    assert text.startswith(
        "chain(precondition(chain(scale_by_momentum(decay=0.9, ema=True, "
        "nesterov=False), bias_correction(decay=0.9)), "
        "by=scale_by_rms(decay=0.999, eps=1e-08"
    )
    assert "eps_in_sqrt=False, bias_correction=True" in text
    assert text.endswith("scale_by_learning_rate(learning_rate=0.001, flip_sign=True))")


def test_repr_of_a_schedule_shows_its_name():
    def warmup(step):
        return 1e-3 * jnp.minimum(1.0, step / 100)

    assert "scale_by_learning_rate(learning_rate=warmup" in repr(gradtx.sgd(warmup))


def test_hyperparameters_are_readable_for_logging():
    opt = gradtx.adam(1e-3, b2=0.99)
    assert opt.name == "adam"
    assert opt.hyperparams == {
        "learning_rate": 1e-3,
        "b1": 0.9,
        "b2": 0.99,
        "eps": 1e-8,
        "eps_root": 0.0,
        "nesterov": False,
    }
    flat = opt.all_hyperparams()
    assert flat["adam.learning_rate"] == 1e-3
    assert flat["adam.0.precondition.0.chain.0.scale_by_momentum.decay"] == 0.9
    assert flat["adam.0.precondition.1.scale_by_rms.decay"] == 0.99
    assert flat["adam.1.scale_by_learning_rate.learning_rate"] == 1e-3
    assert [p.name for p in opt.children] == ["precondition", "scale_by_learning_rate"]
    direction, by = opt.children[0].children
    assert [p.name for p in direction.children] == ["scale_by_momentum", "bias_correction"]
    assert isinstance(by, gradtx.Preconditioner) and by.name == "scale_by_rms"


def test_traced_hyperparameters_show_as_traced_in_repr():
    seen = []

    @jax.jit
    def build(lr):
        seen.append(repr(gradtx.sgd(lr, momentum=0.9)))
        return lr

    build(0.1)
    assert "learning_rate=<traced>" in seen[0]
