#include "vector_math.h"

namespace tensorflow {
namespace tfemergent {

TFEMERGENT_CLONES void PanelProduct(int64_t num_rows, int64_t depth, const float* const* a_rows,
                                    const float* panel, float* out) {
  PanelProductImpl<float>(num_rows, depth, a_rows, panel, out);
}

TFEMERGENT_CLONES void PanelProduct(int64_t num_rows, int64_t depth, const double* const* a_rows,
                                    const double* panel, double* out) {
  PanelProductImpl<double>(num_rows, depth, a_rows, panel, out);
}

}  // namespace tfemergent
}  // namespace tensorflow
