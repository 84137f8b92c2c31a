"""A legacy flax.nn + flax.optim training script, as thousands were written in 2020.

Try: linen-upgrade --diff examples/
"""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nn, optim


class CNN(nn.Module):
    def apply(self, x, num_classes=10):
        x = nn.Conv(x, features=8, kernel_size=(3, 3))
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        return nn.Dense(x, num_classes)


def create_model(key):
    _, initial_params = CNN.init_by_shape(key, [((1, 28, 28, 1), jnp.float32)])
    return nn.Model(CNN, initial_params)


@jax.jit
def train_step(optimizer, batch):
    def loss_fn(model):
        logits = model(batch["image"])
        one_hot = jax.nn.one_hot(batch["label"], 10)
        return -jnp.mean(jnp.sum(one_hot * nn.log_softmax(logits), axis=-1))

    grad = jax.grad(loss_fn)(optimizer.target)
    grad = jax.tree_multimap(lambda g: jnp.clip(g, -1.0, 1.0), grad)
    return optimizer.apply_gradient(grad)


if __name__ == "__main__":
    model = create_model(jax.random.PRNGKey(0))
    optimizer = optim.Momentum(learning_rate=0.1, beta=0.9).create(model)
    rng = np.random.RandomState(0)
    batch = {"image": rng.rand(8, 28, 28, 1).astype(np.float32), "label": rng.randint(0, 10, 8)}
    for _ in range(3):
        optimizer = train_step(optimizer, batch)
