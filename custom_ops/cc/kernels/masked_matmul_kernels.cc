// CPU kernels of TfEmergent>MaskedMatmul and TfEmergent>MaskedMatmulGrad.
//
// Block b of the mask connects rows row_index[b, :] to columns col_index[b, :]
// (sentinels: input_dim / output_dim). Every product is a set of independent
// (block, panel) units on TensorFlow's CPU thread pool: a panel of kPanel output
// columns of one block is packed contiguously and multiplied by a register-tiled
// micro-kernel (vector_math.h). Kernel entries outside the blocks are never read
// and, in the kernel gradient, are exactly zero.
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "vector_math.h"

namespace tensorflow {
namespace tfemergent {

namespace {

Status CheckBlocks(const Tensor& row_index, const Tensor& col_index, int64_t input_dim,
                   int64_t output_dim) {
  if (row_index.dims() != 2 || col_index.dims() != 2 ||
      row_index.dim_size(0) != col_index.dim_size(0)) {
    return errors::InvalidArgument(
        "row_index and col_index must be matrices [num_blocks, size] with the same number of "
        "blocks. Received: row_index.shape=", row_index.shape().DebugString(),
        ", col_index.shape=", col_index.shape().DebugString());
  }
  const auto rows = row_index.flat<int32>();
  for (int64_t k = 0; k < rows.size(); ++k) {
    if (rows(k) < 0 || rows(k) > input_dim) {
      return errors::InvalidArgument("row_index must lie in [0, ", input_dim,
                                     "]. Received: ", rows(k));
    }
  }
  const auto cols = col_index.flat<int32>();
  std::vector<bool> seen(output_dim, false);
  for (int64_t k = 0; k < cols.size(); ++k) {
    if (cols(k) < 0 || cols(k) > output_dim) {
      return errors::InvalidArgument("col_index must lie in [0, ", output_dim,
                                     "]. Received: ", cols(k));
    }
    if (cols(k) < output_dim) {
      if (seen[cols(k)]) {
        return errors::InvalidArgument(
            "Each output column may belong to at most one block. Received: column ", cols(k),
            " twice in col_index");
      }
      seen[cols(k)] = true;
    }
  }
  return OkStatus();
}

struct Blocks {
  int64_t num_blocks, num_rows, num_cols, input_dim, output_dim;
  const int32* rows;
  const int32* cols;
  int32 row(int64_t b, int64_t r) const {
    return r < num_rows ? rows[b * num_rows + r] : static_cast<int32>(input_dim);
  }
  int32 col(int64_t b, int64_t c) const {
    return c < num_cols ? cols[b * num_cols + c] : static_cast<int32>(output_dim);
  }
};

}  // namespace

template <typename T>
class MaskedMatmulOp : public OpKernel {
 public:
  explicit MaskedMatmulOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& kernel = context->input(1);
    const Tensor& row_index = context->input(2);
    const Tensor& col_index = context->input(3);
    OP_REQUIRES(context, x.dims() == 2 && kernel.dims() == 2 && x.dim_size(1) == kernel.dim_size(0),
                errors::InvalidArgument("x [batch, N_in] and kernel [N_in, N_out] must agree. "
                                        "Received: x.shape=", x.shape().DebugString(),
                                        ", kernel.shape=", kernel.shape().DebugString()));
    const int64_t batch = x.dim_size(0), input_dim = kernel.dim_size(0),
                  output_dim = kernel.dim_size(1);
    OP_REQUIRES_OK(context, CheckBlocks(row_index, col_index, input_dim, output_dim));
    const Blocks blocks{row_index.dim_size(0), row_index.dim_size(1), col_index.dim_size(1),
                        input_dim, output_dim, row_index.flat<int32>().data(),
                        col_index.flat<int32>().data()};
    Tensor* y_tensor = nullptr;
    OP_REQUIRES_OK(context,
                   context->allocate_output(0, TensorShape({batch, output_dim}), &y_tensor));
    T* y = y_tensor->flat<T>().data();
    thread::ThreadPool* workers = Workers(context);
    workers->ParallelFor(batch, output_dim, [&](int64_t begin, int64_t end) {
      std::fill(y + begin * output_dim, y + end * output_dim, T(0));
    });
    if (batch == 0 || blocks.num_blocks == 0) return;

    const T* xs = x.flat<T>().data();
    const T* w = kernel.flat<T>().data();
    const int64_t padded_batch = RoundUp(batch, kRowTile);
    const int64_t R = blocks.num_rows, C = blocks.num_cols;
    // Inputs of each block, [B][padded_batch][R], zero at sentinels and padding.
    Tensor packed_tensor;
    OP_REQUIRES_OK(context, context->allocate_temp(DataTypeToEnum<T>::value,
                                                   TensorShape({blocks.num_blocks * padded_batch * R}),
                                                   &packed_tensor));
    T* packed = packed_tensor.flat<T>().data();
    workers->ParallelFor(blocks.num_blocks * padded_batch, R * 2, [&](int64_t begin, int64_t end) {
      for (int64_t unit = begin; unit < end; ++unit) {
        const int64_t b = unit / padded_batch, m = unit % padded_batch;
        T* out = packed + unit * R;
        for (int64_t r = 0; r < R; ++r) {
          const int32 row = blocks.row(b, r);
          out[r] = (m < batch && row < input_dim) ? xs[m * input_dim + row] : T(0);
        }
      }
    });
    constexpr int64_t P = PanelWidth<T>();
    const int64_t num_panels = (C + P - 1) / P;
    workers->ParallelFor(
        blocks.num_blocks * num_panels, 2 * padded_batch * R * P, [&](int64_t begin, int64_t end) {
          std::vector<T> panel(R * P), out(padded_batch * P);
          std::vector<const T*> a_rows(padded_batch);
          for (int64_t unit = begin; unit < end; ++unit) {
            const int64_t b = unit / num_panels, c0 = (unit % num_panels) * P;
            for (int64_t r = 0; r < R; ++r) {
              const int32 row = blocks.row(b, r);
              for (int64_t c = 0; c < P; ++c) {
                const int32 col = blocks.col(b, c0 + c);
                panel[r * P + c] =
                    (row < input_dim && col < output_dim) ? w[row * output_dim + col] : T(0);
              }
            }
            for (int64_t m = 0; m < padded_batch; ++m)
              a_rows[m] = packed + (b * padded_batch + m) * R;
            PanelProduct(padded_batch, R, a_rows.data(), panel.data(), out.data());
            for (int64_t c = 0; c < P; ++c) {
              const int32 col = blocks.col(b, c0 + c);
              if (col >= output_dim) continue;
              for (int64_t m = 0; m < batch; ++m) y[m * output_dim + col] = out[m * P + c];
            }
          }
        });
  }
};

template <typename T>
class MaskedMatmulGradOp : public OpKernel {
 public:
  explicit MaskedMatmulGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& kernel = context->input(1);
    const Tensor& row_index = context->input(2);
    const Tensor& col_index = context->input(3);
    const Tensor& upstream = context->input(4);
    OP_REQUIRES(context,
                x.dims() == 2 && kernel.dims() == 2 && upstream.dims() == 2 &&
                    x.dim_size(1) == kernel.dim_size(0) &&
                    upstream.dim_size(0) == x.dim_size(0) &&
                    upstream.dim_size(1) == kernel.dim_size(1),
                errors::InvalidArgument("x [batch, N_in], kernel [N_in, N_out] and upstream "
                                        "[batch, N_out] must agree. Received: x.shape=",
                                        x.shape().DebugString(), ", kernel.shape=",
                                        kernel.shape().DebugString(), ", upstream.shape=",
                                        upstream.shape().DebugString()));
    const int64_t batch = x.dim_size(0), input_dim = kernel.dim_size(0),
                  output_dim = kernel.dim_size(1);
    OP_REQUIRES_OK(context, CheckBlocks(row_index, col_index, input_dim, output_dim));
    const Blocks blocks{row_index.dim_size(0), row_index.dim_size(1), col_index.dim_size(1),
                        input_dim, output_dim, row_index.flat<int32>().data(),
                        col_index.flat<int32>().data()};
    Tensor *grad_x_tensor = nullptr, *grad_kernel_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &grad_x_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, kernel.shape(), &grad_kernel_tensor));
    T* grad_x = grad_x_tensor->flat<T>().data();
    T* grad_kernel = grad_kernel_tensor->flat<T>().data();
    thread::ThreadPool* workers = Workers(context);
    workers->ParallelFor(input_dim, output_dim, [&](int64_t begin, int64_t end) {
      std::fill(grad_kernel + begin * output_dim, grad_kernel + end * output_dim, T(0));
    });
    workers->ParallelFor(batch, input_dim, [&](int64_t begin, int64_t end) {
      std::fill(grad_x + begin * input_dim, grad_x + end * input_dim, T(0));
    });
    if (batch == 0 || blocks.num_blocks == 0) return;

    const T* xs = x.flat<T>().data();
    const T* w = kernel.flat<T>().data();
    const T* up = upstream.flat<T>().data();
    const int64_t B = blocks.num_blocks, R = blocks.num_rows, C = blocks.num_cols;
    const int64_t padded_batch = RoundUp(batch, kRowTile);
    const int64_t padded_rows = RoundUp(R, kRowTile);
    constexpr int64_t P = PanelWidth<T>();
    const DataType dtype = DataTypeToEnum<T>::value;

    // Packed operands: xt [B][R][batch] (x^T of each block), ub [B][padded_batch][C]
    // (upstream of each block), block input gradients gx [B][batch][R].
    Tensor xt_tensor, ub_tensor, gx_tensor, zeros_tensor;
    OP_REQUIRES_OK(context, context->allocate_temp(dtype, TensorShape({B * R * batch}), &xt_tensor));
    OP_REQUIRES_OK(context,
                   context->allocate_temp(dtype, TensorShape({B * padded_batch * C}), &ub_tensor));
    OP_REQUIRES_OK(context, context->allocate_temp(dtype, TensorShape({B * batch * R}), &gx_tensor));
    OP_REQUIRES_OK(context, context->allocate_temp(
                                dtype, TensorShape({std::max(batch, C) + P}), &zeros_tensor));
    T* xt = xt_tensor.flat<T>().data();
    T* ub = ub_tensor.flat<T>().data();
    T* gx = gx_tensor.flat<T>().data();
    T* zeros = zeros_tensor.flat<T>().data();
    std::fill(zeros, zeros + zeros_tensor.NumElements(), T(0));
    workers->ParallelFor(B * R, batch * 4, [&](int64_t begin, int64_t end) {
      for (int64_t unit = begin; unit < end; ++unit) {
        const int32 row = blocks.row(unit / R, unit % R);
        T* out = xt + unit * batch;
        for (int64_t m = 0; m < batch; ++m)
          out[m] = row < input_dim ? xs[m * input_dim + row] : T(0);
      }
    });
    workers->ParallelFor(B * padded_batch, C * 2, [&](int64_t begin, int64_t end) {
      for (int64_t unit = begin; unit < end; ++unit) {
        const int64_t b = unit / padded_batch, m = unit % padded_batch;
        T* out = ub + unit * C;
        for (int64_t c = 0; c < C; ++c) {
          const int32 col = blocks.col(b, c);
          out[c] = (m < batch && col < output_dim) ? up[m * output_dim + col] : T(0);
        }
      }
    });

    // Kernel gradient: block (R x C) = x_b^T (R x batch) @ upstream_b (batch x C).
    const int64_t col_panels = (C + P - 1) / P;
    workers->ParallelFor(B * col_panels, 2 * padded_rows * batch * P, [&](int64_t begin,
                                                                          int64_t end) {
      std::vector<T> panel(batch * P), out(padded_rows * P);
      std::vector<const T*> a_rows(padded_rows);
      for (int64_t unit = begin; unit < end; ++unit) {
        const int64_t b = unit / col_panels, c0 = (unit % col_panels) * P;
        for (int64_t m = 0; m < batch; ++m) {
          const T* source = ub + (b * padded_batch + m) * C;
          for (int64_t c = 0; c < P; ++c) panel[m * P + c] = c0 + c < C ? source[c0 + c] : T(0);
        }
        for (int64_t r = 0; r < padded_rows; ++r)
          a_rows[r] = r < R ? xt + (b * R + r) * batch : zeros;
        PanelProduct(padded_rows, batch, a_rows.data(), panel.data(), out.data());
        for (int64_t r = 0; r < R; ++r) {
          const int32 row = blocks.row(b, r);
          if (row >= input_dim) continue;
          for (int64_t c = 0; c < P; ++c) {
            const int32 col = blocks.col(b, c0 + c);
            if (col < output_dim) grad_kernel[row * output_dim + col] = out[r * P + c];
          }
        }
      }
    });

    // Input gradient of each block: (batch x R) = upstream_b (batch x C) @ W_b^T (C x R).
    const int64_t row_panels = (R + P - 1) / P;
    workers->ParallelFor(B * row_panels, 2 * padded_batch * C * P, [&](int64_t begin,
                                                                       int64_t end) {
      std::vector<T> panel(C * P), out(padded_batch * P);
      std::vector<const T*> a_rows(padded_batch);
      for (int64_t unit = begin; unit < end; ++unit) {
        const int64_t b = unit / row_panels, r0 = (unit % row_panels) * P;
        for (int64_t c = 0; c < C; ++c) {
          const int32 col = blocks.col(b, c);
          for (int64_t r = 0; r < P; ++r) {
            const int32 row = blocks.row(b, r0 + r);
            panel[c * P + r] =
                (row < input_dim && col < output_dim) ? w[row * output_dim + col] : T(0);
          }
        }
        for (int64_t m = 0; m < padded_batch; ++m) a_rows[m] = ub + (b * padded_batch + m) * C;
        PanelProduct(padded_batch, C, a_rows.data(), panel.data(), out.data());
        for (int64_t m = 0; m < batch; ++m)
          for (int64_t r = 0; r < P && r0 + r < R; ++r)
            gx[(b * batch + m) * R + r0 + r] = out[m * P + r];
      }
    });
    // Sum the blocks' contributions (rows may be shared by blocks): split by batch row.
    workers->ParallelFor(batch, B * R * 2, [&](int64_t begin, int64_t end) {
      for (int64_t m = begin; m < end; ++m)
        for (int64_t b = 0; b < B; ++b)
          for (int64_t r = 0; r < R; ++r) {
            const int32 row = blocks.row(b, r);
            if (row < input_dim) grad_x[m * input_dim + row] += gx[(b * batch + m) * R + r];
          }
    });
  }
};

#define REGISTER(T)                                                                     \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("TfEmergent>MaskedMatmul").Device(DEVICE_CPU).TypeConstraint<T>("T"),        \
      MaskedMatmulOp<T>);                                                               \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("TfEmergent>MaskedMatmulGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),    \
      MaskedMatmulGradOp<T>);
REGISTER(float);
REGISTER(double);
#undef REGISTER

}  // namespace tfemergent
}  // namespace tensorflow
