// CPU kernels of TfEmergent>SparseMatmul, TfEmergent>SparseMatmulValuesGrad and
// TfEmergent>CsrFromCoo.
//
// Layout: the dense operands are transposed into [features, batch] buffers whose
// rows are padded to a multiple of the batch tile, so every nonzero of A touches
// one contiguous run of batch entries (vector FMAs, no gathers in the inner loop).
// - y = x @ A^T ("gather" form): rows of A are split among the threads; each
//   output row accumulates its nonzeros in registers, up to 4 batch tiles per
//   pass (TilesPerPass; a nonzero's index and value are read once per pass).
// - y = x @ A (adjoint_a, "scatter" form): batch tiles are split among the
//   threads (no two threads write the same entries).
// - values gradient: one dot product over the batch per nonzero, rows split; the
//   row's vectors of b stay in registers for up to 4 tiles (TilesPerPass), so one
//   horizontal sum per nonzero and pass (it was one per tile: 15-18 ms -> 9-11 ms
//   at S = 5000, 97% zeros, batch 256).
// - the O(nnz) structure checks, value permutations and CsrFromCoo's counting sort
//   run in parallel chunks too (CsrFromCoo: one chunk of >= 65,536 nonzeros per
//   thread, each with its own write cursors, so the sort stays stable).
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include <atomic>
#include <functional>
#include <type_traits>
#include <vector>

#include "vector_math.h"

namespace tensorflow {
namespace tfemergent {

namespace {

// Batch tile: 2 vectors. Dense operands are stored tile-major,
// [num_tiles][features][kTile], so one tile of all features is contiguous and
// small enough for the L2 cache (5000 features x 128 bytes = 640 KB).
template <typename T>
constexpr int64_t BatchTile() {
  return 2 * VecOf<T>::kWidth;
}

// Batch tiles per pass over a row's nonzeros: 4, 2 or 1, the most whose tiles of the
// gathered operand fit in kPassBytes (the random reads then mostly hit the cache).
// Measured, S = 5000 (640 KB per tile), 97% zeros, batch 256: 4 tiles per pass cut
// the values gradient from 15-18 ms to 9-11 ms; at S = 21,600 (2.7 MB per tile),
// 4 tiles per pass made the whole product 25% slower than 1.
constexpr int64_t kPassBytes = int64_t{3} << 20;
template <typename T>
int TilesPerPass(int64_t gathered_dim) {
  const int64_t tile_bytes = gathered_dim * BatchTile<T>() * static_cast<int64_t>(sizeof(T));
  if (4 * tile_bytes <= kPassBytes) return 4;
  if (2 * tile_bytes <= kPassBytes) return 2;
  return 1;
}

// Calls pass(std::integral_constant<int, NT>(), first_tile) over the batch tiles,
// NT = TilesPerPass tiles at a time, then 2 and 1 for the rest. The lambdas are
// always inlined, so their bodies are compiled for each target clone of the caller.
#define TFEMERGENT_INLINE_LAMBDA __attribute__((always_inline))
template <typename T, typename Pass>
TFEMERGENT_INLINE void ForEachPass(int64_t gathered_dim, int64_t num_tiles, Pass&& pass) {
  const int chunk = TilesPerPass<T>(gathered_dim);
  int64_t tile = 0;
  if (chunk == 4) {
    for (; tile + 4 <= num_tiles; tile += 4) pass(std::integral_constant<int, 4>(), tile);
  }
  if (chunk >= 2) {
    for (; tile + 2 <= num_tiles; tile += 2) pass(std::integral_constant<int, 2>(), tile);
  }
  for (; tile < num_tiles; ++tile) pass(std::integral_constant<int, 1>(), tile);
}

// Rows [row_begin, row_end) of y = x @ A^T for NT consecutive batch tiles at once:
// each nonzero's column index and value are read once for the NT tiles, and the
// output row's 2 * NT vectors stay in registers (independent FMA chains).
template <typename T, int NT>
TFEMERGENT_INLINE void GatherRowsTiles(int64_t row_begin, int64_t row_end, int64_t tile,
                                       int64_t in_dim, int64_t out_dim, const int32* row_pointers,
                                       const int32* column_indices, const T* values, const T* xt,
                                       T* yt) {
  typedef typename VecOf<T>::V V;
  constexpr int W = VecOf<T>::kWidth;
  const int64_t x_stride = in_dim * 2 * W, y_stride = out_dim * 2 * W;
  const T* x_tile = xt + tile * x_stride;
  T* y_tile = yt + tile * y_stride;
  for (int64_t r = row_begin; r < row_end; ++r) {
    V acc[2 * NT];
#pragma GCC unroll 16
    for (int t = 0; t < 2 * NT; ++t) acc[t] = V{};
    for (int64_t p = row_pointers[r]; p < row_pointers[r + 1]; ++p) {
      const T v = values[p];
      const T* s = x_tile + column_indices[p] * 2 * W;
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) {
        acc[2 * t] += v * Load(s + t * x_stride);
        acc[2 * t + 1] += v * Load(s + t * x_stride + W);
      }
    }
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
      Store(y_tile + t * y_stride + r * 2 * W, acc[2 * t]);
      Store(y_tile + t * y_stride + r * 2 * W + W, acc[2 * t + 1]);
    }
  }
}

template <typename T>
TFEMERGENT_INLINE void GatherRowsImpl(int64_t row_begin, int64_t row_end, int64_t num_tiles,
                                      int64_t in_dim, int64_t out_dim, const int32* row_pointers,
                                      const int32* column_indices, const T* values, const T* xt,
                                      T* yt) {
  ForEachPass<T>(in_dim, num_tiles, [&](auto tiles, int64_t tile) TFEMERGENT_INLINE_LAMBDA {
    GatherRowsTiles<T, decltype(tiles)::value>(row_begin, row_end, tile, in_dim, out_dim,
                                               row_pointers, column_indices, values, xt, yt);
  });
}

template <typename T>
TFEMERGENT_INLINE void ScatterRowsImpl(int64_t tile_begin, int64_t tile_end, int64_t num_rows,
                                       int64_t out_dim, const int32* row_pointers,
                                       const int32* column_indices, const T* values, const T* xt,
                                       T* yt) {
  typedef typename VecOf<T>::V V;
  constexpr int W = VecOf<T>::kWidth;
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const T* x_tile = xt + tile * num_rows * 2 * W;
    T* y_tile = yt + tile * out_dim * 2 * W;
    for (int64_t r = 0; r < num_rows; ++r) {
      const V x0 = Load(x_tile + r * 2 * W), x1 = Load(x_tile + r * 2 * W + W);
      for (int64_t p = row_pointers[r]; p < row_pointers[r + 1]; ++p) {
        const T v = values[p];
        T* out = y_tile + column_indices[p] * 2 * W;
        Store(out, Load(out) + v * x0);
        Store(out + W, Load(out + W) + v * x1);
      }
    }
  }
}

// grad[p] += sum over NT consecutive batch tiles of a[tile, column(p)] . b[tile, row(p)]:
// the row's 2 * NT vectors of b stay in registers, one horizontal sum per nonzero.
template <typename T, int NT>
TFEMERGENT_INLINE void RowDotsTiles(int64_t row_begin, int64_t row_end, int64_t tile,
                                    int64_t a_dim, int64_t b_dim, const int32* row_pointers,
                                    const int32* column_indices, const T* at, const T* bt,
                                    T* grad) {
  typedef typename VecOf<T>::V V;
  constexpr int W = VecOf<T>::kWidth;
  const int64_t a_stride = a_dim * 2 * W, b_stride = b_dim * 2 * W;
  const T* a_tile = at + tile * a_stride;
  const T* b_tile = bt + tile * b_stride;
  for (int64_t r = row_begin; r < row_end; ++r) {
    V b[2 * NT];
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
      b[2 * t] = Load(b_tile + t * b_stride + r * 2 * W);
      b[2 * t + 1] = Load(b_tile + t * b_stride + r * 2 * W + W);
    }
    for (int64_t p = row_pointers[r]; p < row_pointers[r + 1]; ++p) {
      const T* a = a_tile + column_indices[p] * 2 * W;
      V acc0 = {}, acc1 = {};
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) {
        acc0 += Load(a + t * a_stride) * b[2 * t];
        acc1 += Load(a + t * a_stride + W) * b[2 * t + 1];
      }
      grad[p] += HorizontalSum(acc0 + acc1);
    }
  }
}

template <typename T>
TFEMERGENT_INLINE void RowDotsImpl(int64_t row_begin, int64_t row_end, int64_t num_tiles,
                                   int64_t a_dim, int64_t b_dim, const int32* row_pointers,
                                   const int32* column_indices, const T* at, const T* bt,
                                   T* grad) {
  ForEachPass<T>(a_dim, num_tiles, [&](auto tiles, int64_t tile) TFEMERGENT_INLINE_LAMBDA {
    RowDotsTiles<T, decltype(tiles)::value>(row_begin, row_end, tile, a_dim, b_dim,
                                            row_pointers, column_indices, at, bt, grad);
  });
}

#define TFEMERGENT_DEFINE_CLONES(T)                                                          \
  TFEMERGENT_CLONES void GatherRows(int64_t rb, int64_t re, int64_t nt, int64_t di,         \
                                    int64_t dout, const int32* rp, const int32* ci,         \
                                    const T* v, const T* xt, T* yt) {                        \
    GatherRowsImpl<T>(rb, re, nt, di, dout, rp, ci, v, xt, yt);                              \
  }                                                                                          \
  TFEMERGENT_CLONES void ScatterRows(int64_t tb, int64_t te, int64_t nr, int64_t dout,      \
                                     const int32* rp, const int32* ci, const T* v,           \
                                     const T* xt, T* yt) {                                   \
    ScatterRowsImpl<T>(tb, te, nr, dout, rp, ci, v, xt, yt);                                 \
  }                                                                                          \
  TFEMERGENT_CLONES void RowDots(int64_t rb, int64_t re, int64_t nt, int64_t da, int64_t db, \
                                 const int32* rp, const int32* ci, const T* at, const T* bt, \
                                 T* g) {                                                     \
    RowDotsImpl<T>(rb, re, nt, da, db, rp, ci, at, bt, g);                                   \
  }
TFEMERGENT_DEFINE_CLONES(float)
TFEMERGENT_DEFINE_CLONES(double)
#undef TFEMERGENT_DEFINE_CLONES

// dense [batch, dim] (row stride dim) -> tile-major [num_tiles][dim][tile], zero padded.
template <typename T>
void ToTileMajor(OpKernelContext* context, const T* src, int64_t batch, int64_t dim, T* dst) {
  constexpr int64_t tile = BatchTile<T>();
  const int64_t num_tiles = RoundUp(batch, tile) / tile;
  constexpr int64_t kChunk = 64;
  const int64_t chunks = (dim + kChunk - 1) / kChunk;
  Workers(context)->ParallelFor(num_tiles * chunks, kChunk * tile * 2, [&](int64_t begin,
                                                                          int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t t = unit / chunks, i0 = (unit % chunks) * kChunk;
      const int64_t i1 = std::min(dim, i0 + kChunk);
      T* out = dst + t * dim * tile;
      for (int64_t lane = 0; lane < tile; ++lane) {
        const int64_t b = t * tile + lane;
        if (b < batch) {
          const T* row = src + b * dim;
          for (int64_t i = i0; i < i1; ++i) out[i * tile + lane] = row[i];
        } else {
          for (int64_t i = i0; i < i1; ++i) out[i * tile + lane] = T(0);
        }
      }
    }
  });
}

// tile-major [num_tiles][dim][tile] -> dense [batch, dim].
template <typename T>
void FromTileMajor(OpKernelContext* context, const T* src, int64_t batch, int64_t dim, T* dst) {
  constexpr int64_t tile = BatchTile<T>();
  Workers(context)->ParallelFor(batch, dim * 2, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const T* in = src + (b / tile) * dim * tile + (b % tile);
      T* row = dst + b * dim;
      for (int64_t i = 0; i < dim; ++i) row[i] = in[i * tile];
    }
  });
}

// values in CSR order: out[p] = values[value_positions[p]].
template <typename T>
void PermuteValues(OpKernelContext* context, const Tensor& values,
                   const Tensor& value_positions, T* out) {
  const T* v = values.flat<T>().data();
  const int32* vp = value_positions.flat<int32>().data();
  const int64_t nnz = value_positions.dim_size(0);
  Workers(context)->ParallelFor(nnz, 4, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) out[p] = v[vp[p]];
  });
}

// Checks the CSR structure so that the kernels never read out of bounds.
Status CheckCsr(OpKernelContext* context, const Tensor& row_pointers, const Tensor& column_indices,
                const Tensor& value_positions, int64_t num_columns, int64_t num_values) {
  if (row_pointers.dims() != 1 || row_pointers.dim_size(0) < 1 || column_indices.dims() != 1 ||
      value_positions.dims() != 1 ||
      column_indices.dim_size(0) != value_positions.dim_size(0)) {
    return errors::InvalidArgument(
        "row_pointers must be a vector [num_rows + 1] and column_indices, value_positions "
        "vectors [nnz] of equal length. Received: row_pointers.shape=",
        row_pointers.shape().DebugString(), ", column_indices.shape=",
        column_indices.shape().DebugString(), ", value_positions.shape=",
        value_positions.shape().DebugString());
  }
  const int64_t nnz = column_indices.dim_size(0);
  const auto rp = row_pointers.flat<int32>();
  const auto ci = column_indices.flat<int32>();
  const auto vp = value_positions.flat<int32>();
  if (rp(0) != 0 || rp(rp.size() - 1) != nnz) {
    return errors::InvalidArgument("row_pointers must start at 0 and end at nnz = ", nnz,
                                   ". Received: first=", rp(0), ", last=", rp(rp.size() - 1));
  }
  for (int64_t r = 0; r + 1 < rp.size(); ++r) {
    if (rp(r + 1) < rp(r)) {
      return errors::InvalidArgument("row_pointers must be non-decreasing. Received: ",
                                     "row_pointers[", r, "]=", rp(r), " > row_pointers[", r + 1,
                                     "]=", rp(r + 1));
    }
  }
  // The O(nnz) bounds check in parallel; the first bad entry (if any) is reported.
  std::atomic<int64_t> first_bad{nnz};
  const int32* cp = ci.data();
  const int32* vpp = vp.data();
  Workers(context)->ParallelFor(nnz, 2, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      if (cp[p] < 0 || cp[p] >= num_columns || vpp[p] < 0 || vpp[p] >= num_values) {
        int64_t seen = first_bad.load();
        while (p < seen && !first_bad.compare_exchange_weak(seen, p)) {
        }
        return;
      }
    }
  });
  for (int64_t p = first_bad.load(); p < nnz; ++p) {
    if (ci(p) < 0 || ci(p) >= num_columns) {
      return errors::InvalidArgument("column_indices must lie in [0, ", num_columns,
                                     "). Received: column_indices[", p, "]=", ci(p));
    }
    if (vp(p) < 0 || vp(p) >= num_values) {
      return errors::InvalidArgument("value_positions must lie in [0, ", num_values,
                                     "). Received: value_positions[", p, "]=", vp(p));
    }
  }
  return OkStatus();
}

}  // namespace

template <typename T>
class SparseMatmulOp : public OpKernel {
 public:
  explicit SparseMatmulOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("num_columns", &num_columns_));
    OP_REQUIRES_OK(context, context->GetAttr("adjoint_a", &adjoint_a_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& values = context->input(1);
    const Tensor& row_pointers = context->input(2);
    const Tensor& column_indices = context->input(3);
    const Tensor& value_positions = context->input(4);
    OP_REQUIRES(context, x.dims() == 2 && values.dims() == 1,
                errors::InvalidArgument("x must be a matrix and values a vector. Received: "
                                        "x.shape=", x.shape().DebugString(),
                                        ", values.shape=", values.shape().DebugString()));
    OP_REQUIRES_OK(context, CheckCsr(context, row_pointers, column_indices, value_positions,
                                     num_columns_, values.dim_size(0)));
    const int64_t num_rows = row_pointers.dim_size(0) - 1;
    const int64_t batch = x.dim_size(0);
    const int64_t in_dim = adjoint_a_ ? num_rows : num_columns_;
    const int64_t out_dim = adjoint_a_ ? num_columns_ : num_rows;
    OP_REQUIRES(context, x.dim_size(1) == in_dim,
                errors::InvalidArgument("x must have ", in_dim, " columns. Received: x.shape=",
                                        x.shape().DebugString()));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({batch, out_dim}), &y));
    if (batch == 0 || out_dim == 0) return;

    const int64_t stride = RoundUp(batch, BatchTile<T>());
    const int64_t num_tiles = stride / BatchTile<T>();
    const int64_t nnz = column_indices.dim_size(0);
    Tensor xt_tensor, yt_tensor, values_tensor;
    const DataType dtype = DataTypeToEnum<T>::value;
    OP_REQUIRES_OK(context, context->allocate_temp(dtype, TensorShape({in_dim * stride}),
                                                   &xt_tensor));
    OP_REQUIRES_OK(context, context->allocate_temp(dtype, TensorShape({out_dim * stride}),
                                                   &yt_tensor));
    OP_REQUIRES_OK(context, context->allocate_temp(dtype, TensorShape({nnz}), &values_tensor));
    T* xt = xt_tensor.flat<T>().data();
    T* yt = yt_tensor.flat<T>().data();
    T* v = values_tensor.flat<T>().data();
    PermuteValues<T>(context, values, value_positions, v);
    ToTileMajor<T>(context, x.flat<T>().data(), batch, in_dim, xt);
    const int32* rp = row_pointers.flat<int32>().data();
    const int32* ci = column_indices.flat<int32>().data();
    thread::ThreadPool* workers = Workers(context);
    if (!adjoint_a_) {
      const int64_t cost = 2 * stride * (nnz / std::max<int64_t>(num_rows, 1) + 1);
      workers->ParallelFor(num_rows, cost, [&](int64_t begin, int64_t end) {
        GatherRows(begin, end, num_tiles, in_dim, out_dim, rp, ci, v, xt, yt);
      });
    } else {
      std::fill(yt, yt + out_dim * stride, T(0));
      workers->ParallelFor(num_tiles, 4 * BatchTile<T>() * (nnz + num_rows),
                           [&](int64_t begin, int64_t end) {
                             ScatterRows(begin, end, num_rows, out_dim, rp, ci, v, xt, yt);
                           });
    }
    FromTileMajor<T>(context, yt, batch, out_dim, y->flat<T>().data());
  }

 private:
  int64_t num_columns_;
  bool adjoint_a_;
};

template <typename T>
class SparseMatmulValuesGradOp : public OpKernel {
 public:
  explicit SparseMatmulValuesGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& a = context->input(0);
    const Tensor& b = context->input(1);
    const Tensor& row_pointers = context->input(2);
    const Tensor& column_indices = context->input(3);
    const Tensor& value_positions = context->input(4);
    OP_REQUIRES(context, a.dims() == 2 && b.dims() == 2 && a.dim_size(0) == b.dim_size(0),
                errors::InvalidArgument("a and b must be matrices with the same number of rows. "
                                        "Received: a.shape=", a.shape().DebugString(),
                                        ", b.shape=", b.shape().DebugString()));
    const int64_t nnz = column_indices.dims() == 1 ? column_indices.dim_size(0) : -1;
    OP_REQUIRES_OK(context,
                   CheckCsr(context, row_pointers, column_indices, value_positions, a.dim_size(1), nnz));
    const int64_t num_rows = row_pointers.dim_size(0) - 1;
    OP_REQUIRES(context, b.dim_size(1) == num_rows,
                errors::InvalidArgument("b must have num_rows = ", num_rows,
                                        " columns. Received: b.shape=", b.shape().DebugString()));
    Tensor* grad = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({nnz}), &grad));
    T* g = grad->flat<T>().data();
    std::fill(g, g + nnz, T(0));
    const int64_t batch = a.dim_size(0);
    if (batch == 0 || nnz == 0) return;

    const int64_t stride = RoundUp(batch, BatchTile<T>());
    const int64_t num_tiles = stride / BatchTile<T>();
    const int64_t a_dim = a.dim_size(1);
    Tensor at_tensor, bt_tensor, grad_tensor;
    const DataType dtype = DataTypeToEnum<T>::value;
    OP_REQUIRES_OK(context, context->allocate_temp(dtype, TensorShape({a_dim * stride}),
                                                   &at_tensor));
    OP_REQUIRES_OK(context, context->allocate_temp(dtype, TensorShape({num_rows * stride}),
                                                   &bt_tensor));
    OP_REQUIRES_OK(context, context->allocate_temp(dtype, TensorShape({nnz}), &grad_tensor));
    T* at = at_tensor.flat<T>().data();
    T* bt = bt_tensor.flat<T>().data();
    T* csr_grad = grad_tensor.flat<T>().data();
    std::fill(csr_grad, csr_grad + nnz, T(0));
    ToTileMajor<T>(context, a.flat<T>().data(), batch, a_dim, at);
    ToTileMajor<T>(context, b.flat<T>().data(), batch, num_rows, bt);
    const int32* rp = row_pointers.flat<int32>().data();
    const int32* ci = column_indices.flat<int32>().data();
    const int32* vp = value_positions.flat<int32>().data();
    const int64_t cost = 2 * stride * (nnz / std::max<int64_t>(num_rows, 1) + 1);
    Workers(context)->ParallelFor(num_rows, cost, [&](int64_t begin, int64_t end) {
      RowDots(begin, end, num_tiles, a_dim, num_rows, rp, ci, at, bt, csr_grad);
    });
    Workers(context)->ParallelFor(nnz, 4, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) g[vp[p]] = csr_grad[p];
    });
  }
};

class CsrFromCooOp : public OpKernel {
 public:
  explicit CsrFromCooOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("num_rows", &num_rows_));
    OP_REQUIRES_OK(context, context->GetAttr("num_columns", &num_columns_));
    OP_REQUIRES_OK(context, context->GetAttr("transpose", &transpose_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& indices = context->input(0);
    OP_REQUIRES(context, indices.dims() == 2 && indices.dim_size(1) == 2,
                errors::InvalidArgument("indices must be [nnz, 2]. Received: indices.shape=",
                                        indices.shape().DebugString()));
    const int64_t nnz = indices.dim_size(0);
    OP_REQUIRES(context, nnz < (int64_t{1} << 31),
                errors::InvalidArgument("at most 2^31 - 1 nonzeros. Received: nnz=", nnz));
    Tensor *row_pointers = nullptr, *column_indices = nullptr, *value_positions = nullptr;
    OP_REQUIRES_OK(context,
                   context->allocate_output(0, TensorShape({num_rows_ + 1}), &row_pointers));
    OP_REQUIRES_OK(context, context->allocate_output(1, TensorShape({nnz}), &column_indices));
    OP_REQUIRES_OK(context, context->allocate_output(2, TensorShape({nnz}), &value_positions));
    const int64_t* coo = indices.flat<int64_t>().data();
    int32* pointers = row_pointers->flat<int32>().data();
    int32* columns = column_indices->flat<int32>().data();
    int32* positions = value_positions->flat<int32>().data();
    // K's shape: [num_columns, num_rows] for A = K^T, [num_rows, num_columns] for A = K.
    const int64_t k_rows = transpose_ ? num_columns_ : num_rows_;
    const int64_t k_cols = transpose_ ? num_rows_ : num_columns_;
    const int64_t rows = num_rows_;
    const bool transpose = transpose_;
    // The nonzeros are cut into `chunks` consecutive ranges, one per thread. Pass 1
    // (parallel): bounds, row-major order and the count of each row of A per chunk.
    thread::ThreadPool* workers = Workers(context);
    const int64_t chunks =
        std::max<int64_t>(1, std::min<int64_t>(workers->NumThreads(), nnz / 65536));
    auto chunk_begin = [&](int64_t c) { return nnz * c / chunks; };
    std::vector<int32> counts(chunks * rows, 0);
    std::vector<int64_t> first_bad(chunks, -1);
    auto each_chunk = [&](const std::function<void(int64_t)>& fn) {
      workers->ParallelFor(chunks, int64_t{1} << 30, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) fn(c);
      });
    };
    each_chunk([&](int64_t c) {
      int32* count = counts.data() + c * rows;
      for (int64_t q = chunk_begin(c); q < chunk_begin(c + 1); ++q) {
        const int64_t i = coo[2 * q], j = coo[2 * q + 1];
        const bool in_bounds = i >= 0 && i < k_rows && j >= 0 && j < k_cols;
        const bool ordered =
            q == 0 || i > coo[2 * q - 2] || (i == coo[2 * q - 2] && j > coo[2 * q - 1]);
        if (!in_bounds || !ordered) {
          first_bad[c] = q;
          return;
        }
        ++count[transpose ? j : i];
      }
    });
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t q = first_bad[c];
      if (q < 0) continue;
      const int64_t i = coo[2 * q], j = coo[2 * q + 1];
      OP_REQUIRES(context, i >= 0 && i < k_rows && j >= 0 && j < k_cols,
                  errors::InvalidArgument("indices must lie in [0, ", k_rows, ") x [0, ", k_cols,
                                          "). Received: indices[", q, "]=[", i, ", ", j, "]"));
      OP_REQUIRES(context, false,
                  errors::InvalidArgument(
                      "indices must be unique and in canonical row-major order. Received: "
                      "indices[", q - 1, "]=[", coo[2 * q - 2], ", ", coo[2 * q - 1],
                      "] then indices[", q, "]=[", i, ", ", j, "]"));
    }
    // Row pointers, and each chunk's first write position in every row of A (chunks
    // in nonzero order, so the sort stays stable in K's row i).
    pointers[0] = 0;
    for (int64_t r = 0; r < rows; ++r) {
      int32 total = pointers[r];
      for (int64_t c = 0; c < chunks; ++c) {
        const int32 n = counts[c * rows + r];
        counts[c * rows + r] = total;
        total += n;
      }
      pointers[r + 1] = total;
    }
    // Pass 2 (parallel): without transpose, A's nonzeros are the kernel's, in order;
    // with it, a counting sort by K's column j (one write cursor per row of A and
    // chunk: sequential write streams whose heads stay in cache).
    each_chunk([&](int64_t c) {
      if (!transpose) {
        for (int64_t q = chunk_begin(c); q < chunk_begin(c + 1); ++q) {
          columns[q] = static_cast<int32>(coo[2 * q + 1]);
          positions[q] = static_cast<int32>(q);
        }
        return;
      }
      int32* cursor = counts.data() + c * rows;
      for (int64_t q = chunk_begin(c); q < chunk_begin(c + 1); ++q) {
        const int32 p = cursor[coo[2 * q + 1]]++;
        columns[p] = static_cast<int32>(coo[2 * q]);
        positions[p] = static_cast<int32>(q);
      }
    });
  }

 private:
  int64_t num_rows_;
  int64_t num_columns_;
  bool transpose_;
};

REGISTER_KERNEL_BUILDER(Name("TfEmergent>CsrFromCoo").Device(DEVICE_CPU), CsrFromCooOp);

#define REGISTER(T)                                                                        \
  REGISTER_KERNEL_BUILDER(                                                                 \
      Name("TfEmergent>SparseMatmul").Device(DEVICE_CPU).TypeConstraint<T>("T"),           \
      SparseMatmulOp<T>);                                                                  \
  REGISTER_KERNEL_BUILDER(                                                                 \
      Name("TfEmergent>SparseMatmulValuesGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
      SparseMatmulValuesGradOp<T>);
REGISTER(float);
REGISTER(double);
#undef REGISTER

}  // namespace tfemergent
}  // namespace tensorflow
