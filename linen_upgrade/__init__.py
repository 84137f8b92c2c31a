"""linen-upgrade: upgrade legacy flax.nn / flax.optim code to flax.linen + optax."""

__version__ = "0.1.0"
