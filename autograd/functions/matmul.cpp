// Differentiable matmul. For C = A B (per batch): dA = dC B^T and dB = A^T dC. Batch dims that
// were broadcast are summed back (ops::sum_to), and 1-D operands are handled by promoting them to
// matrices ([K] -> [1,K] on the left, [K,1] on the right) exactly as the forward does, so the
// backward is the 2-D formula plus reshapes.
#include "autograd/functions/matmul.h"

#include "autograd/functions/common.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/reduce.h"

namespace okd {

Tensor matmul(const Tensor& a, const Tensor& b, Precision precision) {
  Tensor out = ops::matmul(a, b, precision);
  if (needs_record({a, b})) {
    Saved save_a(b.requires_grad() ? a : Tensor()), save_b(a.requires_grad() ? b : Tensor());
    Shape sa = a.shape(), sb = b.shape();
    record(Op::matmul, {a, b}, {out},
           [save_a, save_b, sa, sb, precision](const TensorList& g,
                                               const std::vector<bool>& needs) -> TensorList {
             // The 2-D (or batched) shapes the forward worked with.
             Shape sa2 = sa.size() == 1 ? Shape{1, sa[0]} : sa;
             Shape sb2 = sb.size() == 1 ? Shape{sb[0], 1} : sb;
             Shape batch_a(sa2.begin(), sa2.end() - 2), batch_b(sb2.begin(), sb2.end() - 2);
             Shape out2 = broadcast_shapes(batch_a, batch_b, "matmul");
             out2.push_back(sa2[sa2.size() - 2]);
             out2.push_back(sb2.back());
             Tensor dout = ops::reshape(g[0], out2);
             TensorList d(2);
             if (needs[0]) {
               Tensor b2 = ops::reshape(save_b.get(Op::matmul), sb2);
               Tensor da = ops::matmul(dout, ops::transpose(b2, -1, -2), precision);  // dA = dC B^T
               d[0] = ops::reshape(ops::sum_to(da, sa2), sa);
             }
             if (needs[1]) {
               Tensor a2 = ops::reshape(save_a.get(Op::matmul), sa2);
               Tensor db = ops::matmul(ops::transpose(a2, -1, -2), dout, precision);  // dB = A^T dC
               d[1] = ops::reshape(ops::sum_to(db, sb2), sb);
             }
             return d;
           },
           {save_a.tensor, save_b.tensor});
  }
  return out;
}

}  // namespace okd
