"""distance_weighted_l1: peak memory of forward + backward vs the weight's size.

One evaluation of ``sum_ij |w_ij| * ||p_in_i - p_out_j||`` for an N x N layer
(N = 4096, float32, 2-D positions) and its gradient w.r.t. the weights and both
position sets, called eagerly under a `tf.GradientTape` as a layer's
``add_loss`` would be. Target: extra peak memory <= 2 x the weight's size.

Compared with a naive formula that materialises the ``[N, N, D]`` coordinate
differences and lets autodiff do the rest (its gradient is also NaN at zero
distance, which is why the kernel exists).

Run: ``python -m benchmarks.bench_distance_cost [--quick] [--record]``.
"""

import numpy as np
import tensorflow as tf

from benchmarks import harness
from tfemergent.kernels import distance_weighted_l1

MIB = 2.0**20


def naive_cost(weights, p_in, p_out):
    differences = p_in[:, None, :] - p_out[None, :, :]
    return tf.reduce_sum(tf.abs(weights) * tf.norm(differences, axis=-1))


def make_step(cost, weights, p_in, p_out):
    def step():
        with tf.GradientTape() as tape:
            value = cost(weights, p_in, p_out)
        return tape.gradient(value, [weights, p_in, p_out])

    return step


def main(argv=None):
    args = harness.parse_args(__doc__.splitlines()[0], argv)
    size, repeats = (1024, 5) if args.quick else (4096, 7)
    print(f"distance_weighted_l1 forward+backward, {size} x {size} float32 weights, D = 2")
    print(harness.machine_description())
    rng = np.random.default_rng(0)
    weights = tf.Variable(rng.normal(size=(size, size)).astype("float32"))
    p_in = tf.Variable(rng.normal(size=(size, 2)).astype("float32"))
    p_out = tf.Variable(rng.normal(size=(size, 2)).astype("float32"))
    weight_bytes = size * size * 4

    steps = {
        "distance_weighted_l1": make_step(
            lambda w, a, b: distance_weighted_l1(w, a, b), weights, p_in, p_out
        ),
        "naive (materialised [N, N, D])": make_step(naive_cost, weights, p_in, p_out),
    }
    rows = []
    memory = {}
    for name, step in steps.items():
        step()  # tracing and compilation are not measured
        measured = [harness.peak_memory(step) for _ in range(3)]
        memory[name] = max(m["extra_bytes"] for m in measured)
        method = measured[0]["method"]
        print(f"{name}: extra peak {memory[name] / MIB:.1f} MiB "
              f"({memory[name] / weight_bytes:.2f} x the weight)")
    timing = harness.compare(
        {name: step for name, step in steps.items()},
        warmup=1,
        repeats=repeats,
        baseline="naive (materialised [N, N, D])",
    )
    print(harness.format_comparison(timing, baseline="naive (materialised [N, N, D])"))
    for name in steps:
        ratio = memory[name] / weight_bytes
        rows.append(
            [
                name,
                f"{weight_bytes / MIB:.0f}",
                f"{memory[name] / MIB:.1f}",
                f"{ratio:.2f}",
                "≤ 2" if name == "distance_weighted_l1" else "-",
                ("yes" if ratio <= 2.0 else "no") if name == "distance_weighted_l1" else "-",
                f"{timing[name]['median_ms']:.1f} ± {timing[name]['iqr_ms']:.1f}",
            ]
        )
    table = harness.markdown_table(
        [
            "implementation",
            "weight MiB",
            "extra peak MiB",
            "extra / weight",
            "target",
            "met?",
            "time ms (median ± IQR)",
        ],
        rows,
    )
    print("\n" + table)
    print(f"\nmemory measured with: {method}")
    if args.record:
        body = (
            f"Forward + gradient w.r.t. weights, p_in and p_out, {size} x {size} float32 "
            "weights, 2-D positions, eager call under `tf.GradientTape` (the kernel itself "
            "runs XLA-compiled), default block size. Extra peak = peak allocator bytes "
            "during the step minus the bytes live before it (the weights and positions); "
            "it includes the [N, N] weight gradient, which any implementation returns; "
            "max over 3 runs after a warm-up call. Memory measured with: "
            f"{method}.\n\n{table}\n"
        )
        harness.record_section("distance_weighted_l1 memory", body)
        print(f"\nrecorded in {harness.RESULTS_PATH}")


if __name__ == "__main__":
    main()
