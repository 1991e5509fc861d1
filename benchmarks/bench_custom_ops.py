"""C++ op `TfEmergent>SparseMatmul` vs the pure-TF paths.

One product with its gradients (forward + gradient w.r.t. x and the weights),
every path in one process, interleaved repeats after warm-up (benchmarks.harness).

* SparseMatmul (the URN step product), S = 5000 and 21,600, 97% / 99% zeros
  (the same number of random columns in every row), batch 256: ``dense`` = jit-compiled ``x @ kernel``; ``tf.sparse`` =
  ``tf.sparse.sparse_dense_matmul``; ``pure TF`` = `sparse_matmul` with the ops
  disabled (CSR ``SparseMatrixMatMul``); ``c++ op`` = `sparse_matmul` enabled.
* ``dense`` and ``c++ op`` again, the two alone (interleaved): the target
  ratio (>= 5x at S = 5000, 97% zeros) without the other paths' memory traffic
  between the op's calls.
* GFLOP/s on the active entries (2 * batch * active * 3 products) relative to
  the dense rate of the same run (2 * batch * N_in * N_out * 3 / dense time).

Run: ``python -m benchmarks.bench_custom_ops [--quick] [--record]``.
"""

import math

import numpy as np
import tensorflow as tf

from benchmarks import harness
from tfemergent.kernels import custom_ops
from tfemergent.kernels import sparse_matmul
from tfemergent.kernels import xla


def step(matmul, weights, upstream, jit_compile):
    @tf.function(jit_compile=jit_compile)
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = matmul(x)
            loss = tf.reduce_sum(outputs * upstream)
        return [outputs] + tape.gradient(loss, [x, weights])

    return run


def switched(enabled, fn):
    def call(*args):
        (custom_ops.enable_custom_ops if enabled else custom_ops.disable_custom_ops)()
        return fn(*args)

    return call


# tf.sparse.sparse_dense_matmul's values gradient forms [nnz, batch]: skipped above this.
TF_SPARSE_MAX_BYTES = 4 * 2**30


def random_sparse_kernel(dense, sparsity, rng):
    """The entries of ``dense`` at ``round((1 - sparsity) * N_out)`` random columns per row."""
    num_rows, num_columns = dense.shape
    per_row = max(1, round((1.0 - sparsity) * num_columns))
    columns = np.stack(
        [np.sort(rng.choice(num_columns, per_row, replace=False)) for _ in range(num_rows)]
    )
    rows = np.repeat(np.arange(num_rows), per_row)
    columns = columns.reshape(-1)
    indices = np.stack([rows, columns], axis=1).astype("int64")  # row-major order
    return tf.sparse.SparseTensor(indices, dense[rows, columns], dense.shape)


def sparse_rows(sizes, batch, repeats, warmup):
    rows = []
    for size in sizes:
        rng = np.random.default_rng(0)
        x = tf.constant(rng.standard_normal((batch, size), dtype=np.float32))
        upstream = tf.constant(rng.standard_normal((batch, size), dtype=np.float32))
        # float32 throughout, no [S, S] masks: at S = 21,600 one float64 [S, S] array
        # is 3.7 GB (the first version of this benchmark was killed for memory there).
        dense = rng.standard_normal((size, size), dtype=np.float32)
        dense /= math.sqrt(size)
        kernel = tf.Variable(dense)
        dense_step = step(lambda x: tf.matmul(x, kernel), kernel, upstream, True)
        for sparsity in (0.97, 0.99):
            sparse = random_sparse_kernel(dense, sparsity, rng)
            values = tf.Variable(sparse.values)
            order = xla.sparse_transpose_order(sparse.indices, size)

            def product(x, sparse=sparse, values=values, order=order):
                return sparse_matmul(
                    x, tf.sparse.SparseTensor(sparse.indices, values, [size, size]), order
                )

            def tf_sparse(x, sparse=sparse, values=values):
                kernel_t = tf.sparse.reorder(tf.sparse.transpose(
                    tf.sparse.SparseTensor(sparse.indices, values, [size, size])))
                return tf.transpose(tf.sparse.sparse_dense_matmul(kernel_t, x, adjoint_b=True))

            pure = step(product, values, upstream, False)
            op = step(product, values, upstream, False)
            tf_step = step(tf_sparse, values, upstream, False)
            custom_ops.disable_custom_ops()
            reference = pure(x)
            custom_ops.enable_custom_ops()
            errors = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(op(x), reference))
            nnz = int(sparse.values.shape[0])
            paths = {
                "dense": lambda: dense_step(x),
                "tf.sparse": lambda: tf_step(x),
                "pure TF": switched(False, lambda: pure(x)),
                "c++ op": switched(True, lambda: op(x)),
            }
            if nnz * batch * 4 > TF_SPARSE_MAX_BYTES:
                # Its values gradient gathers one batch row per nonzero: [nnz, batch].
                del paths["tf.sparse"]
            results = harness.compare(paths, warmup=warmup, repeats=repeats, baseline="dense")
            print(f"\nSparseMatmul S={size} {sparsity:.0%} zeros (nnz {nnz}), "
                  f"max |op - pure TF| {errors:.1e}")
            print(harness.format_comparison(results, baseline="dense"))
            dense_rate = 6 * batch * size * size / results["dense"]["median_ms"] / 1e6
            op_rate = 6 * batch * nnz / results["c++ op"]["median_ms"] / 1e6
            # The target pair on its own (still interleaved): in the 4-way run the op
            # follows paths that allocate and free GBs (tf.sparse's [nnz, batch]
            # gradient) and stream the pure-TF path's buffers, which slows its next call.
            pair = harness.compare({"dense": paths["dense"], "c++ op": paths["c++ op"]},
                                   warmup=warmup, repeats=repeats, baseline="dense")
            print(harness.format_comparison(pair, baseline="dense"))
            skipped = f"not run ({nnz * batch * 4 / 2**30:.0f} GiB [nnz, batch] gradient)"
            rows.append([
                f"{size}", f"{sparsity:.0%}",
                *(f"{results[n]['median_ms']:.1f}" if n in results else skipped
                  for n in ("dense", "tf.sparse", "pure TF", "c++ op")),
                f"{results['c++ op']['speedup']:.2f}x",
                f"{pair['dense']['median_ms']:.1f} / {pair['c++ op']['median_ms']:.1f} = "
                f"{pair['c++ op']['speedup']:.2f}x",
                f"{results['pure TF']['median_ms'] / results['c++ op']['median_ms']:.2f}x",
                f"{results['tf.sparse']['median_ms'] / results['c++ op']['median_ms']:.2f}x"
                if "tf.sparse" in results else "—",
                f"{op_rate:.0f} / {dense_rate:.0f} ({100 * op_rate / dense_rate:.0f}%)",
            ])
    return rows


def main(argv=None):
    args = harness.parse_args(__doc__.splitlines()[0], argv)
    repeats, warmup = (3, 1) if args.quick else (7, 2)
    sparse = sparse_rows((2000,) if args.quick else (5000, 21600), 256, repeats, warmup)
    body = (
        "One product + gradients w.r.t. x and the weights, float32, batch 256, medians in ms, "
        f"{repeats} interleaved repeats after {warmup} warm-up calls. GFLOP/s counts the "
        "nonzero entries only; the dense rate is the dense path of the "
        "same run.\n\n"
        + harness.markdown_table(
            ["S", "zeros", "dense ms", "tf.sparse ms", "pure TF ms", "c++ op ms", "op vs dense",
             "dense / op ms, the pair alone", "op vs pure TF", "op vs tf.sparse", "op GFLOP/s / dense GFLOP/s"], sparse)
    )
    print("\n" + body)
    if args.record:
        harness.record_section("C++ custom ops", body)


if __name__ == "__main__":
    main()
