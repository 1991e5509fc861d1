// Op registrations: TfEmergent>MaskedMatmul and its gradient op.
//
// The mask is block-structured (a tfemergent BlockMask): block b connects the
// input rows row_index[b, :] to the output columns col_index[b, :] (padding:
// input_dim in row_index, output_dim in col_index). Only the blocks are
// computed; inactive parts of the kernel are never read. A row-structured mask
// is the special case of one column per block. Gradients are registered in
// Python (tfemergent/kernels/custom_ops.py).
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace tfemergent {

using shape_inference::DimensionHandle;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

static Status BlockShapes(InferenceContext* c, ShapeHandle* x, ShapeHandle* kernel) {
  ShapeHandle row_index, col_index;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, kernel));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &row_index));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 2, &col_index));
  DimensionHandle unused;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(*x, 1), c->Dim(*kernel, 0), &unused));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(row_index, 0), c->Dim(col_index, 0), &unused));
  return OkStatus();
}

REGISTER_OP("TfEmergent>MaskedMatmul")
    .Input("x: T")
    .Input("kernel: T")
    .Input("row_index: int32")
    .Input("col_index: int32")
    .Output("y: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x, kernel;
      TF_RETURN_IF_ERROR(BlockShapes(c, &x, &kernel));
      c->set_output(0, c->Matrix(c->Dim(x, 0), c->Dim(kernel, 1)));
      return OkStatus();
    })
    .Doc(R"doc(
y = x @ (kernel * mask) for a block-structured mask; inactive blocks are skipped.
)doc");

REGISTER_OP("TfEmergent>MaskedMatmulGrad")
    .Input("x: T")
    .Input("kernel: T")
    .Input("row_index: int32")
    .Input("col_index: int32")
    .Input("upstream: T")
    .Output("grad_x: T")
    .Output("grad_kernel: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x, kernel;
      TF_RETURN_IF_ERROR(BlockShapes(c, &x, &kernel));
      c->set_output(0, x);
      c->set_output(1, kernel);
      return OkStatus();
    })
    .Doc(R"doc(
Gradients of MaskedMatmul: grad_x = upstream @ (kernel * mask)^T and
grad_kernel = (x^T @ upstream) * mask (exactly zero outside the blocks).
)doc");

}  // namespace tfemergent
}  // namespace tensorflow
