// The proof that every differentiable op is gradient-checked: walks the inventory (ops.def) and
// fails for an op with no gradcheck case and for every case whose analytic gradient disagrees
// with central finite differences. apps/autograd_audit prints the same check as a table.
#include <gtest/gtest.h>

#include <map>

#include "autograd/gradcheck.h"

namespace okd {
namespace {

const std::vector<GradcheckCase>& all_cases() {
  static const std::vector<GradcheckCase> cases = gradcheck_cases();
  return cases;
}

TEST(Inventory, NamesAreUniqueAndNonEmpty) {
  std::map<std::string, int> seen;
  for (Op op : all_ops()) {
    std::string name = op_name(op);
    EXPECT_FALSE(name.empty());
    EXPECT_EQ(++seen[name], 1) << "op name " << name << " listed twice in ops.def";
  }
  EXPECT_EQ(all_ops().size(), static_cast<size_t>(Op::kCount));
  EXPECT_STREQ(op_name(Op::neg), "neg");
  EXPECT_STREQ(op_name(Op::matmul), "matmul");
}

TEST(Inventory, EveryOpHasAGradcheckCase) {
  std::map<Op, int> count;
  for (const auto& c : all_cases()) {
    ASSERT_LT(static_cast<size_t>(c.op), static_cast<size_t>(Op::kCount)) << "case " << c.label;
    ++count[c.op];
  }
  for (Op op : all_ops())
    EXPECT_GT(count[op], 0) << "op '" << op_name(op)
                            << "' is in autograd/ops.def but has no gradcheck "
                            << "case: add one in autograd/functions/<family>_cases.cpp";
}

TEST(Inventory, EveryCasePassesGradcheck) {
  ASSERT_FALSE(all_cases().empty());
  int failed = 0;
  for (const auto& c : all_cases()) {
    GradcheckResult r = gradcheck(c.f, c.inputs, c.options);
    if (!r.passed) ++failed;
    EXPECT_TRUE(r.passed) << op_name(c.op) << " [" << c.label << "]: " << r.message;
  }
  EXPECT_EQ(failed, 0);
}

// Every case must check at least one input, or it would pass without checking anything.
TEST(Inventory, EveryCaseChecksSomething) {
  for (const auto& c : all_cases()) {
    bool any = false;
    for (const auto& t : c.inputs) any |= t.requires_grad();
    EXPECT_TRUE(any) << op_name(c.op) << " [" << c.label << "] has no input that requires grad";
  }
}

}  // namespace
}  // namespace okd
