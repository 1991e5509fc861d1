// Shared helpers of the tfemergent CPU kernels: portable vector types (GCC/Clang
// vector extensions), runtime ISA dispatch, a parallel transpose and a
// register-tiled panel product.
//
// Flags come from tf.sysconfig only (no -march): hot loops are compiled several
// times with target_clones (AVX-512, AVX2+FMA, baseline x86-64) and the best one
// for the running CPU is picked when the library is loaded.
#ifndef TFEMERGENT_KERNELS_VECTOR_MATH_H_
#define TFEMERGENT_KERNELS_VECTOR_MATH_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/platform/threadpool.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TFEMERGENT_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TFEMERGENT_CLONES
#endif
#define TFEMERGENT_INLINE inline __attribute__((always_inline))

namespace tensorflow {
namespace tfemergent {

// 64-byte vectors; unaligned loads and stores through the *_u types.
typedef float FloatVec __attribute__((vector_size(64)));
typedef double DoubleVec __attribute__((vector_size(64)));
typedef float FloatVecU __attribute__((vector_size(64), aligned(4)));
typedef double DoubleVecU __attribute__((vector_size(64), aligned(8)));

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef FloatVec V;
  typedef FloatVecU U;
  static constexpr int kWidth = 16;
};
template <>
struct VecOf<double> {
  typedef DoubleVec V;
  typedef DoubleVecU U;
  static constexpr int kWidth = 8;
};

template <typename T>
TFEMERGENT_INLINE typename VecOf<T>::V Load(const T* p) {
  return *reinterpret_cast<const typename VecOf<T>::U*>(p);
}
template <typename T>
TFEMERGENT_INLINE void Store(T* p, typename VecOf<T>::V v) {
  *reinterpret_cast<typename VecOf<T>::U*>(p) = v;
}

// Sum of the lanes of a vector, as a tree of half-width adds (the scalar loop
// `for (i) total += v[i]` is a chain of dependent adds: 16 latencies per call).
typedef float FloatVec8 __attribute__((vector_size(32)));
typedef float FloatVec4 __attribute__((vector_size(16)));
typedef double DoubleVec4 __attribute__((vector_size(32)));
typedef double DoubleVec2 __attribute__((vector_size(16)));
TFEMERGENT_INLINE float HorizontalSum(FloatVec v) {
  const FloatVec8 h8 = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                       __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const FloatVec4 h4 = __builtin_shufflevector(h8, h8, 0, 1, 2, 3) +
                       __builtin_shufflevector(h8, h8, 4, 5, 6, 7);
  return (h4[0] + h4[2]) + (h4[1] + h4[3]);
}
TFEMERGENT_INLINE double HorizontalSum(DoubleVec v) {
  const DoubleVec4 h4 = __builtin_shufflevector(v, v, 0, 1, 2, 3) +
                        __builtin_shufflevector(v, v, 4, 5, 6, 7);
  const DoubleVec2 h2 = __builtin_shufflevector(h4, h4, 0, 1) +
                        __builtin_shufflevector(h4, h4, 2, 3);
  return h2[0] + h2[1];
}

inline thread::ThreadPool* Workers(OpKernelContext* context) {
  return context->device()->tensorflow_cpu_worker_threads()->workers;
}

inline int64_t RoundUp(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// dst[c, r] = src[r, c] for r < rows, c < cols; strides in elements. Columns
// cols..dst_cols of dst rows are left alone.
template <typename T>
void ParallelTranspose(OpKernelContext* context, const T* src, int64_t rows, int64_t cols,
                       int64_t src_stride, T* dst, int64_t dst_stride) {
  constexpr int64_t kTile = 32;
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  const int64_t col_tiles = (cols + kTile - 1) / kTile;
  Workers(context)->ParallelFor(
      row_tiles * col_tiles, kTile * kTile * 4, [&](int64_t begin, int64_t end) {
        for (int64_t tile = begin; tile < end; ++tile) {
          const int64_t r0 = (tile / col_tiles) * kTile, c0 = (tile % col_tiles) * kTile;
          const int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
          for (int64_t c = c0; c < c1; ++c)
            for (int64_t r = r0; r < r1; ++r) dst[c * dst_stride + r] = src[r * src_stride + c];
        }
      });
}

// Panel product: out[m, 0:kPanel] = sum_k a_rows[m][k] * panel[k, 0:kPanel] for
// m < num_rows (num_rows a multiple of kRowTile; extra rows may point at zeros).
// kPanel = 2 vectors; 4 rows x 2 vectors = 8 independent accumulators.
constexpr int kRowTile = 4;
template <typename T>
constexpr int PanelWidth() {
  return 2 * VecOf<T>::kWidth;
}

template <typename T>
TFEMERGENT_INLINE void PanelProductImpl(int64_t num_rows, int64_t depth, const T* const* a_rows,
                                        const T* panel, T* out) {
  typedef typename VecOf<T>::V V;
  constexpr int W = VecOf<T>::kWidth;
  for (int64_t m = 0; m < num_rows; m += kRowTile) {
    const T* a0 = a_rows[m];
    const T* a1 = a_rows[m + 1];
    const T* a2 = a_rows[m + 2];
    const T* a3 = a_rows[m + 3];
    V c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};
    const T* b = panel;
    for (int64_t k = 0; k < depth; ++k, b += 2 * W) {
      const V b0 = Load(b), b1 = Load(b + W);
      const T s0 = a0[k], s1 = a1[k], s2 = a2[k], s3 = a3[k];
      c00 += s0 * b0;
      c01 += s0 * b1;
      c10 += s1 * b0;
      c11 += s1 * b1;
      c20 += s2 * b0;
      c21 += s2 * b1;
      c30 += s3 * b0;
      c31 += s3 * b1;
    }
    T* o = out + m * 2 * W;
    Store(o, c00);
    Store(o + W, c01);
    Store(o + 2 * W, c10);
    Store(o + 3 * W, c11);
    Store(o + 4 * W, c20);
    Store(o + 5 * W, c21);
    Store(o + 6 * W, c30);
    Store(o + 7 * W, c31);
  }
}

// Defined with TFEMERGENT_CLONES in vector_math.cc; callers in other files call
// its dispatching (ifunc) symbol, so the declarations carry no attribute.
void PanelProduct(int64_t num_rows, int64_t depth, const float* const* a_rows, const float* panel,
                  float* out);
void PanelProduct(int64_t num_rows, int64_t depth, const double* const* a_rows,
                  const double* panel, double* out);

}  // namespace tfemergent
}  // namespace tensorflow

#endif  // TFEMERGENT_KERNELS_VECTOR_MATH_H_
