"""masked_matmul / block_matmul vs the naive dense ``x @ (kernel * mask)``.

One training step, forward + gradient w.r.t. ``x`` and the weight variable, three
implementations, each a ``tf.function(jit_compile=True)`` that returns the
outputs and both gradients (returning only the gradients would let XLA drop the
forward product: the gradients of the linear test loss do not need it):

* ``naive``: ``tf.matmul(x, kernel * mask)``, dense ``[N, N]`` kernel variable.
* ``gather``: ``masked_matmul(x, kernel, block_mask, implementation="gather")``,
  same dense kernel variable (its gradient is a dense ``[N, N]`` tensor).
* ``block-stored``: ``block_matmul(x, block_kernel, block_mask)`` with the
  weights stored as blocks, ``block_kernel = block_mask.gather_blocks(kernel)``
  (a ``[B, R, C]`` variable; its gradient has the block shape).

Receptive-field masks of density 1/4, 1/16 and 1/64 on an N x N layer
(N = 4096, batch 256). Layout: the N inputs and the N outputs are both a
sqrt(N) x sqrt(N) grid; the grid is cut into g x g square patches (g = 2, 4, 8);
output units of patch k see exactly the input pixels of patch k. So there are
g**2 blocks of N / g**2 rows and N / g**2 columns, density 1 / g**2, and neither
the rows nor the columns of a block are contiguous in memory.

The target (speed-up >= 0.5 / density) is judged on the faster of the two block
paths. Extra columns:

* ``dense-gradient floor``: time to produce a zero ``[N, N]`` float32 tensor. The
  gradient w.r.t. a dense kernel variable is a dense ``[N, N]`` tensor, so the
  naive and gather paths pay at least this much; it bounds the gather speed-up.
  The block-stored path does not pay it.
* ``CPU-time speed-up``: the same ratio of process CPU time (less sensitive to
  other processes on a shared machine).

A second table times the block product alone (forward, no gradient): the
batched matmul ``[B, batch, R] @ [B, R, C]`` that the block-stored path uses,
one dense matmul with the same number of multiply-adds (``x @ kernel[:, :N/d]``),
and ``tf.einsum("nbr,brc->nbc")`` on the batch-major gathered inputs
``[batch, B, R]`` (XLA adds transposes around its dot).

Run: ``python -m benchmarks.bench_masked_matmul [--quick] [--record]``.
"""

import math

import numpy as np
import tensorflow as tf

from benchmarks import harness
from tfemergent.kernels import BlockMask
from tfemergent.kernels import block_matmul
from tfemergent.kernels import masked_matmul

DENSITY_DIVISORS = (4, 16, 64)
BLOCK_PATHS = ("gather", "block-stored")


def receptive_field_mask(size, num_patches_per_side):
    """BlockMask of square receptive fields on a sqrt(size) x sqrt(size) grid."""
    side = math.isqrt(size)
    patch = side // num_patches_per_side
    grid = np.arange(size).reshape(side, side)
    blocks = []
    for row in range(num_patches_per_side):
        for col in range(num_patches_per_side):
            pixels = grid[row * patch : (row + 1) * patch, col * patch : (col + 1) * patch]
            blocks.append((pixels.reshape(-1), pixels.reshape(-1)))
    return BlockMask.from_blocks(blocks, size, size)


def training_step(matmul, weights, upstream):
    """A jit-compiled step: outputs = matmul(x) and the gradients of
    sum(outputs * upstream) w.r.t. x and ``weights``."""

    @tf.function(jit_compile=True)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = matmul(x)
            loss = tf.reduce_sum(outputs * upstream)
        return [outputs] + tape.gradient(loss, [x, weights])

    return step


def check_same_numbers(block_mask, naive, gather, blocked, x):
    """Max abs differences of outputs and gradients to the naive step."""
    reference = naive(x)
    errors = {}
    for name, result in (("gather", gather(x)), ("block-stored", blocked(x))):
        kernel_grad = result[2]
        if name == "block-stored":  # compare on the blocks
            reference_grad = block_mask.gather_blocks(reference[2])
        else:
            reference_grad = reference[2]
        pairs = zip(result[:2] + [kernel_grad], reference[:2] + [reference_grad])
        errors[name] = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in pairs)
    if max(errors.values()) > 1e-3:
        raise AssertionError(f"a block path differs from naive: max errors {errors}")
    return errors


def run(size, batch, repeats, warmup):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, size)).astype("float32"))
    upstream = tf.constant(rng.normal(size=(batch, size)).astype("float32"))
    kernel = tf.Variable(rng.normal(size=(size, size)).astype("float32") / math.sqrt(size))
    rows, product_rows, summary = [], [], []
    for divisor in DENSITY_DIVISORS:
        block_mask = receptive_field_mask(size, math.isqrt(divisor))
        dense_mask = block_mask.to_dense()
        assert abs(block_mask.density - 1.0 / divisor) < 1e-12, block_mask.density
        block_kernel = tf.Variable(block_mask.gather_blocks(kernel))

        naive = training_step(lambda x: tf.matmul(x, kernel * dense_mask), kernel, upstream)
        gather = training_step(
            lambda x: masked_matmul(x, kernel, block_mask, implementation="gather"),
            kernel,
            upstream,
        )
        blocked = training_step(
            lambda x: block_matmul(x, block_kernel, block_mask), block_kernel, upstream
        )
        floor = tf.function(lambda x: tf.zeros([size, size]) + x[0, 0], jit_compile=True)
        errors = check_same_numbers(block_mask, naive, gather, blocked, x)

        results = harness.compare(
            {
                "naive": lambda: naive(x),
                "gather": lambda: gather(x),
                "block-stored": lambda: blocked(x),
                "dense-gradient floor": lambda: floor(x),
            },
            warmup=warmup,
            repeats=repeats,
            baseline="naive",
        )
        print(
            f"\ndensity 1/{divisor} ({block_mask})  max |difference to naive|: "
            + ", ".join(f"{name} {error:.1e}" for name, error in errors.items())
        )
        print(harness.format_comparison(results, baseline="naive"))
        target = 0.5 * divisor
        best = max(BLOCK_PATHS, key=lambda name: results[name]["speedup"])
        speedup = results[best]["speedup"]
        floor_ms = results["dense-gradient floor"]["median_ms"]
        rows.append(
            [f"1/{divisor}", f"{block_mask.num_blocks} x ({block_mask.max_rows} x "
             f"{block_mask.max_cols})"]
            + [
                f"{results[name]['median_ms']:.1f} ± {results[name]['iqr_ms']:.1f}"
                for name in ("naive",) + BLOCK_PATHS
            ]
            + [f"{results[name]['speedup']:.2f}x" for name in BLOCK_PATHS]
            + [
                f"≥ {target:g}x",
                best,
                "yes" if speedup >= target else "no",
                " / ".join(f"{results[name]['cpu_speedup']:.2f}x" for name in BLOCK_PATHS),
                f"{floor_ms:.1f}",
                f"{results['naive']['median_ms'] / floor_ms:.0f}x",
            ]
        )
        product, product_results = product_row(
            divisor, block_mask, block_kernel, kernel, x, repeats, warmup
        )
        product_rows.append(product)
        summary.append(
            {
                "divisor": divisor,
                "target": target,
                "best": best,
                "speedup": {name: results[name]["speedup"] for name in BLOCK_PATHS},
                "naive_ms": results["naive"]["median_ms"],
                "block_ms": results["block-stored"]["median_ms"],
                "batched_ms": product_results["batched_ms"],
                "call_ms": product_results["call_ms"],
                "floor_ms": floor_ms,
            }
        )
    return rows, product_rows, summary


def product_row(divisor, block_mask, block_kernel, kernel, x, repeats, warmup):
    """Forward block product alone: batched matmul vs equal-work matmul vs einsum.

    Times are net of the cost of calling a compiled function (``empty call``,
    which returns a constant), measured alongside.
    """
    num_blocks, num_rows, num_cols = block_kernel.shape
    batch = x.shape[0]
    rng = np.random.default_rng(1)
    blocks_first = tf.constant(rng.normal(size=(num_blocks, batch, num_rows)).astype("float32"))
    batch_first = tf.constant(rng.normal(size=(batch, num_blocks, num_rows)).astype("float32"))
    # Columns of the dense product with the same multiply-adds: N * work = B * R * C.
    work = num_blocks * num_rows * num_cols // x.shape[1]

    def compiled(function):
        return tf.function(function, jit_compile=True)

    impls = {
        "batched matmul": compiled(lambda: tf.matmul(blocks_first, block_kernel)),
        "one matmul": compiled(lambda: tf.matmul(x, kernel[:, :work])),
        "einsum": compiled(lambda: tf.einsum("nbr,brc->nbc", batch_first, block_kernel)),
        "empty call": compiled(lambda: tf.ones([1])),
    }
    results = harness.compare(impls, warmup=warmup, repeats=repeats, baseline="one matmul")
    print(f"block product alone, density 1/{divisor}:")
    print(harness.format_comparison(results, baseline="one matmul"))
    call_ms = results["empty call"]["median_ms"]
    net = {
        name: max(results[name]["median_ms"] - call_ms, 1e-3)
        for name in ("batched matmul", "one matmul", "einsum")
    }
    row = (
        [
            f"1/{divisor}",
            f"{num_blocks} x ([{batch} x {num_rows}] @ [{num_rows} x {num_cols}])",
            f"[{batch} x {x.shape[1]}] @ [{x.shape[1]} x {work}]",
        ]
        + [f"{net[name]:.2f}" for name in ("batched matmul", "one matmul", "einsum")]
        + [f"{net['one matmul'] / net['batched matmul']:.2f}", f"{call_ms:.2f}"]
    )
    return row, {"batched_ms": net["batched matmul"], "call_ms": call_ms}


HEADER = [
    "density",
    "blocks (rows x cols)",
    "naive ms (median ± IQR)",
    "gather ms",
    "block-stored ms",
    "gather speed-up",
    "block-stored speed-up",
    "target",
    "best path",
    "met?",
    "CPU-time speed-up (gather / block-stored)",
    "dense-gradient floor ms",
    "gather bound at floor",
]
PRODUCT_HEADER = [
    "density",
    "batched matmul (block-stored forward)",
    "equal-work single matmul",
    "batched ms",
    "single ms",
    "einsum ms",
    "batched efficiency (single / batched)",
    "call overhead ms (subtracted)",
]


def main(argv=None):
    args = harness.parse_args(__doc__.splitlines()[0], argv)
    size, batch, repeats, warmup = (1024, 64, 5, 2) if args.quick else (4096, 256, 15, 3)
    print(f"masked_matmul / block_matmul forward+backward, N_in = N_out = {size}, batch {batch}")
    print(harness.machine_description())
    rows, product_rows, summary = run(size, batch, repeats, warmup)
    table = harness.markdown_table(HEADER, rows)
    product_table = harness.markdown_table(PRODUCT_HEADER, product_rows)
    verdict = judgement(summary)
    print("\n" + table + "\n\n" + product_table + "\n\n" + verdict)
    if args.record:
        body = RECORD_TEXT.format(
            size=size,
            batch=batch,
            repeats=repeats,
            table=table,
            product_table=product_table,
            judgement=verdict,
        )
        harness.record_section("masked_matmul", body)
        print(f"\nrecorded in {harness.RESULTS_PATH}")


def judgement(summary):
    """Which targets are met, on which path, and what bounds the others (markdown)."""
    lines = []
    for item in summary:
        speedups = ", ".join(f"{name} {value:.2f}x" for name, value in item["speedup"].items())
        best = item["speedup"][item["best"]]
        met = "met" if best >= item["target"] else "NOT met"
        lines.append(
            f"- density 1/{item['divisor']}: target ≥ {item['target']:g}x {met} "
            f"(best path {item['best']}; {speedups})."
        )
    for item in summary:
        if item["speedup"][item["best"]] >= item["target"]:
            continue
        products_ms = 3 * item["batched_ms"]
        lines.append(
            f"- Why 1/{item['divisor']} is missed: the target needs a step of ≤ "
            f"{item['naive_ms'] / item['target']:.1f} ms; the block-stored step takes "
            f"{item['block_ms']:.1f} ms. Its three block products (forward, input gradient, "
            f"kernel gradient) cost about 3 x {item['batched_ms']:.2f} ms (second table; the "
            f"kernel-gradient product, with a transposed operand, somewhat more) and the call "
            f"of a compiled function {item['call_ms']:.1f} ms; products and call alone would "
            f"cap the speed-up near "
            f"{item['naive_ms'] / (products_ms + item['call_ms']):.0f}x. The rest of the step "
            f"is data movement that does not shrink with the density: four gathers over "
            f"[batch, N] tensors with the transposes into and out of block order (inputs "
            f"into blocks, block outputs into columns, upstream gradient into blocks, input "
            f"gradient back)."
        )
    return "\n".join(lines)


RECORD_TEXT = """\
One training step: forward + gradient w.r.t. x and the weight variable, N_in = N_out = \
{size}, batch {batch}, float32, every path one `tf.function(jit_compile=True)` returning \
the outputs and both gradients, {repeats} interleaved repeats after warm-up; \
receptive-field masks (square patches of a 64 x 64 grid, rows and columns of a block not \
contiguous). Paths: `naive` = `tf.matmul(x, kernel * mask)`; `gather` = \
`masked_matmul(..., implementation="gather")` on the dense kernel variable; \
`block-stored` = `block_matmul(x, block_kernel, block_mask)` on a [B, R, C] block kernel \
variable. Speed-up = naive median / path median (wall time); the target is judged on the \
faster block path (`best path`).

{table}

{judgement}

Reading the tables:

- `gather` keeps a dense [N, N] kernel variable, so its gradient is a dense [N, N] tensor:
  producing it (`dense-gradient floor`) bounds the gather path by the `gather bound at
  floor` column, whatever the block products cost. `block-stored` does not pay that floor:
  its kernel gradient has the block shape [B, R, C] and nothing N x N is formed.
- Block product efficiency (second table): XLA's CPU batched matmul over the blocks runs at
  least as fast as one dense matmul with the same multiply-adds, also for 64 x 64 blocks,
  so grouping blocks into larger products cannot gain anything (block-diagonal groups
  would only add multiply-adds). `einsum("nbr,brc->nbc")` on batch-major gathered inputs
  adds transposes around the same dot.
- Layout of the block-stored path (`tfemergent/kernels/xla.py`): block-major with the batch
  in the middle, [B, batch, K], custom gradient. Alternatives measured while developing it
  (same machine, profiles of the XLA thunks, not part of this benchmark): a feature-major
  [B, K, batch] layout (needs a transpose of x, outputs, upstream and input gradient; XLA's
  CPU transposes cost about two copies each), gathers along the feature axis with
  `tf.gather(axis=1)` or `tf.gather_nd` (element-wise gathers, or strided reads), a
  batch-major `einsum` formulation, and letting the tape differentiate the gathers
  (scatter-adds) were all 5-50 % (einsum, autodiff: about 2x) slower at density 1/64. The
  three products use batched matmuls without transposed operands except the kernel
  gradient (x_blocks^T @ upstream_blocks), which is about 2x slower per multiply-add at
  64 x 64 blocks; the alternatives that avoid it need an extra transpose pass that costs
  as much. Zeroing padded block entries is skipped for masks with fixed indices and no
  padding (as here).
- Unlike the previous record of this section, every step returns its outputs as well as
  the gradients: with only the gradients of the linear test loss returned, XLA dropped
  the forward product of every path (the naive step then did two of its three large
  matmuls). Absolute times vary by 2-3x with the load of another job sharing the 2 cores;
  the interleaved ratios are what counts.

Block product alone (forward only, no gathers), median ms net of the call overhead:

{product_table}
"""


if __name__ == "__main__":
    main()
