"""The optimizers, filed by family: each module is a table of recipes.

A recipe is a function decorated with ``@recipe`` (``gradtx/_recipe.py``)
whose arguments are its hyperparameters and whose body returns the public
transforms it chains, one per line, in the order the math applies.  The
names are exported once, from ``gradtx`` (``gradtx.adam``); this package
exports nothing of its own.

==================  =======================================================
module              optimizers
==================  =======================================================
``_sgd``            sgd, noisy_sgd, optimistic_gradient_descent, madgrad
``_adam``           adam, nadam, adamw, nadamw, amsgrad, radam, adamax,
                    adamaxw, optimistic_adam, optimistic_adam_v2
``_adam_variants``  adabelief, yogi, adan, laprop, mars, adam_mini,
                    ademamix, simplified_ademamix, adopt, sophia, spam,
                    stable_spam, conda
``_rms``            rmsprop, adagrad, adadelta, adafactor, sm3, came
``_sign``           lion, sign_sgd, signum, rprop
``_layerwise``      lamb, lars, fromage, novograd
``_matrix``         muon, normuon, soap, shampoo, psgd_kron, galore, splus,
                    kl_shampoo, kl_soap, one_sided_shampoo
``_orthogonalized`` scion, scion_unconstrained, adamuon, muonclip
``_parameter_free`` prodigy, dadapt_adamw, dog, dowg, cocob, momo,
                    momo_adam, polyak_sgd
``_quasi_newton``   lbfgs
``_averaging``      schedule_free_adamw, schedule_free_sgd
``_outer``          snoo
``_low_rank``       dion, dion2
==================  =======================================================

The transforms the recipes chain live one floor down, in ``gradtx/_*.py``
by concept (``_momentum``, ``_second_moment``, ``_sign``, ``_matrix``, ...).
"""
