"""Peak memory of the URN synaptic-length cost on the paper's 60x60x6 lattice.

SynapticLength(c_syn, gamma) = c_syn * sum |W_ij| d_ij^gamma over S = 21,600
neurons, forward + gradient w.r.t. the S x S kernel. The distances are computed
block by block from the coordinates (`distance_weighted_l1`), so the extra peak
memory should be the kernel gradient (S^2 float32) plus one block, never an
S x S float64 distance matrix (3.5 GiB).

    python -m benchmarks.bench_synaptic_length [--quick] [--record]
"""

import time

import tensorflow as tf

from benchmarks import harness
from tfemergent.geometry import UpliftedLattice
from tfemergent.regularizers import SynapticLength

MIB = 2**20


def main(argv=None):
    args = harness.parse_args(__doc__.splitlines()[0], argv)
    width, height, depth = (16, 16, 4) if args.quick else (60, 60, 6)
    lattice = UpliftedLattice(width, height, depth, beta=1.0)
    size = lattice.num_neurons
    kernel = tf.Variable(tf.random.normal([size, size], stddev=0.01, seed=0))
    coordinates = tf.constant(lattice.coordinates("float32"))
    rows = []
    for gamma in (1.0, 2.0):
        cost = SynapticLength(c_syn=1e-4, gamma=gamma)

        def step():
            with tf.GradientTape() as tape:
                value = cost((kernel, coordinates))
            return value, tape.gradient(value, kernel)

        step()  # trace and compile
        start = time.perf_counter()
        step()
        seconds = time.perf_counter() - start
        memory = harness.peak_memory(step)
        extra = memory["extra_bytes"] / MIB
        gradient = size * size * 4 / MIB
        rows.append(
            [f"{width}x{height}x{depth} (S={size})", gamma, f"{gradient:.0f}", f"{extra:.1f}",
             f"{extra - gradient:.1f}", f"{size * size * 8 / MIB:.0f}", f"{seconds:.2f}"]
        )
        print(rows[-1], memory["method"])
    if args.record:
        body = harness.markdown_table(
            ["lattice", "gamma", "kernel gradient MiB", "extra peak MiB", "beyond the gradient MiB",
             "an S x S float64 distance matrix would be MiB", "step s"],
            rows,
        )
        body += (
            "\n\nForward + gradient w.r.t. the kernel, eager call (the kernel runs XLA-compiled), "
            "default block size. Extra peak = peak allocator bytes during the step minus the "
            "bytes live before it (kernel and coordinates); it includes the S x S float32 "
            "kernel gradient, which any implementation returns. No S x S distance matrix is "
            "ever held.\n"
        )
        harness.record_section("URN synaptic length memory", body)


if __name__ == "__main__":
    main()
