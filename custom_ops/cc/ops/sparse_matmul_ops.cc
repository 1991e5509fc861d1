// Op registrations: TfEmergent>SparseMatmul and TfEmergent>SparseMatmulValuesGrad.
//
// A is a CSR matrix [num_rows, num_columns]: for p in
// [row_pointers[r], row_pointers[r + 1]), A[r, column_indices[p]] =
// values[value_positions[p]] (value_positions lets the trainable values stay in
// the caller's order, e.g. row-major order of the kernel while A is its
// transpose). Gradients are registered in Python (tfemergent/kernels/custom_ops.py).
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace tfemergent {

using shape_inference::DimensionHandle;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

static Status CsrShapes(InferenceContext* c, int first, DimensionHandle* num_rows,
                        DimensionHandle* nnz) {
  ShapeHandle row_pointers, column_indices, value_positions;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first), 1, &row_pointers));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first + 1), 1, &column_indices));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first + 2), 1, &value_positions));
  TF_RETURN_IF_ERROR(c->Subtract(c->Dim(row_pointers, 0), 1, num_rows));
  TF_RETURN_IF_ERROR(
      c->Merge(c->Dim(column_indices, 0), c->Dim(value_positions, 0), nnz));
  return OkStatus();
}

REGISTER_OP("TfEmergent>SparseMatmul")
    .Input("x: T")
    .Input("values: T")
    .Input("row_pointers: int32")
    .Input("column_indices: int32")
    .Input("value_positions: int32")
    .Output("y: T")
    .Attr("T: {float, double}")
    .Attr("num_columns: int >= 1")
    .Attr("adjoint_a: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x, values;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &x));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &values));
      DimensionHandle num_rows, nnz;
      TF_RETURN_IF_ERROR(CsrShapes(c, 2, &num_rows, &nnz));
      int64_t num_columns;
      TF_RETURN_IF_ERROR(c->GetAttr("num_columns", &num_columns));
      bool adjoint_a;
      TF_RETURN_IF_ERROR(c->GetAttr("adjoint_a", &adjoint_a));
      DimensionHandle unused;
      if (adjoint_a) {  // y = x @ A: x [batch, num_rows] -> [batch, num_columns]
        TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 1), num_rows, &unused));
        c->set_output(0, c->Matrix(c->Dim(x, 0), num_columns));
      } else {  // y = x @ A^T: x [batch, num_columns] -> [batch, num_rows]
        TF_RETURN_IF_ERROR(c->WithValue(c->Dim(x, 1), num_columns, &unused));
        c->set_output(0, c->Matrix(c->Dim(x, 0), num_rows));
      }
      return OkStatus();
    })
    .Doc(R"doc(
Sparse (CSR) times dense: y = x @ A^T, or y = x @ A with adjoint_a.

Multithreaded on TensorFlow's CPU thread pool. The URN recurrent step uses A = K^T.
)doc");

REGISTER_OP("TfEmergent>SparseMatmulValuesGrad")
    .Input("a: T")
    .Input("b: T")
    .Input("row_pointers: int32")
    .Input("column_indices: int32")
    .Input("value_positions: int32")
    .Output("grad_values: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle a, b;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &a));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &b));
      DimensionHandle num_rows, nnz, unused;
      TF_RETURN_IF_ERROR(CsrShapes(c, 2, &num_rows, &nnz));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(a, 0), c->Dim(b, 0), &unused));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(b, 1), num_rows, &unused));
      c->set_output(0, c->Vector(nnz));
      return OkStatus();
    })
    .Doc(R"doc(
Gradient of the CSR values: grad_values[value_positions[p]] =
sum_m b[m, r(p)] * a[m, column_indices[p]] (a sampled dense-dense product).
)doc");

REGISTER_OP("TfEmergent>CsrFromCoo")
    .Input("indices: int64")
    .Output("row_pointers: int32")
    .Output("column_indices: int32")
    .Output("value_positions: int32")
    .Attr("num_rows: int >= 0")
    .Attr("num_columns: int >= 0")
    .Attr("transpose: bool = true")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle indices;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &indices));
      DimensionHandle unused;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(indices, 1), 2, &unused));
      int64_t num_rows;
      TF_RETURN_IF_ERROR(c->GetAttr("num_rows", &num_rows));
      c->set_output(0, c->Vector(num_rows + 1));
      c->set_output(1, c->Vector(c->Dim(indices, 0)));
      c->set_output(2, c->Vector(c->Dim(indices, 0)));
      return OkStatus();
    })
    .Doc(R"doc(
A CSR matrix A [num_rows, num_columns] from the COO indices [nnz, 2] of a kernel K in
canonical row-major order (checked). With transpose (default) A = K^T: K is
[num_columns, num_rows], and A's nonzero p is K's nonzero value_positions[p] (a counting
sort by K's column, one sequential pass). Without transpose A = K (value_positions is
the identity).
)doc");

}  // namespace tfemergent
}  // namespace tensorflow
