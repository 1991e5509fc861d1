"""Training-step overhead of the spatial costs: SpatialDense network vs plain Dense network.

The paper's network n-128-128-128-256-20 (n = 1568, concatenated MNIST+Fashion),
batch 256, one jit-compiled training step (forward, loss, backward, Adam
update). "regular" is the same network of `keras.layers.Dense` without costs;
"spatial" has SpatialDense layers with the transport and density costs on the
last three layers, as `tfemergent.models.build_spatial_network` builds it.
Target: overhead of the spatial step <= 10%.

    python -m benchmarks.bench_spatial_dense [--quick] [--record]
"""

import numpy as np
import tensorflow as tf

from benchmarks import harness
from tfemergent.losses import MultiTaskCrossEntropy
from tfemergent.models import build_spatial_network

TARGET_OVERHEAD = 0.10


def make_step(model, x, y):
    loss_fn = MultiTaskCrossEntropy(num_tasks=2)
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=True)
    def step():
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
            loss = loss_fn(y, outputs)
            if model.losses:
                loss = loss + tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def main(argv=None):
    args = harness.parse_args(__doc__.splitlines()[0], argv)
    input_dim, batch = (196, 64) if args.quick else (1568, 256)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch, input_dim), dtype=np.float32))
    y = tf.constant(rng.integers(0, 10, size=(batch, 2)))
    steps = {}
    for name, spatial in (("regular (Dense)", False), ("spatial (SpatialDense)", True)):
        model = build_spatial_network(
            input_dim, spatial=spatial, transport_normalization="connections", seed=0
        )
        steps[name] = make_step(model, x, y)
    results = harness.compare(steps, warmup=5, repeats=10 if args.quick else 60)
    print(harness.format_comparison(results))
    regular = results["regular (Dense)"]["median_ms"]
    spatial = results["spatial (SpatialDense)"]["median_ms"]
    overhead = spatial / regular - 1
    met = "yes" if overhead <= TARGET_OVERHEAD else "no"
    print(f"overhead of the spatial costs: {overhead:+.1%} (target <= {TARGET_OVERHEAD:.0%})")
    if args.record:
        body = harness.markdown_table(
            ["step", "median ms", "IQR ms"],
            [[name, f"{r['median_ms']:.2f}", f"{r['iqr_ms']:.2f}"] for name, r in results.items()],
        )
        body += (
            f"\n\nPaper network {input_dim}-128-128-128-256-20, batch {batch}, one jit-compiled "
            "training step (forward, loss, gradients, Adam update). Overhead of the spatial "
            f"costs: **{overhead:+.1%}** (target <= {TARGET_OVERHEAD:.0%}, met: {met}).\n"
        )
        harness.record_section("SpatialDense training step", body)
    return results


if __name__ == "__main__":
    main()
