// Every error the core raises is a cvg::Error whose message names the op and the offending
// values (shapes, dims, dtypes, devices). These tests pin the important parts of each message.
#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include "core/accumulate.h"
#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;

namespace {

// The message of the cvg::Error fn throws; fails the test when it throws nothing or another
// exception type.
const TensorOptions kF64 = TensorOptions{}.with_dtype(DType::float64);

}  // namespace

TEST_CASE("errors: broadcasting mismatches name the op and both shapes", "[errors]") {
  const std::string msg = error_of([] { add(zeros({2, 3}), zeros({4})); });
  CHECK_THAT(msg, Contains("add: shapes [2, 3] and [4] do not broadcast"));
  CHECK_THAT(msg, Contains("3 vs 4"));
  CHECK_THAT(error_of([] { mul(zeros({4, 1}), zeros({2, 5, 3})); }),
             Contains("mul: shapes [4, 1] and [2, 5, 3] do not broadcast (dim 1: 4 vs 5)"));
  CHECK_THAT(error_of([] { broadcast_shapes({3}, {2}, "my_op"); }), Contains("my_op: shapes [3] and [2]"));
  CHECK_THAT(error_of([] { broadcast_strides(zeros({3}), {2}, "my_op"); }),
             Contains("my_op: cannot broadcast shape [3] to [2]"));
  CHECK_THAT(error_of([] { broadcast_strides(zeros({2, 2}), {2}, "my_op"); }),
             Contains("my_op: cannot broadcast shape [2, 2] to [2]"));
  CHECK_THAT(error_of([] { expand(zeros({2}), {3}); }), Contains("expand: cannot broadcast shape [2] to [3]"));
}

TEST_CASE("errors: bad dims name the op, the dim and the valid range", "[errors]") {
  Tensor x = zeros({2, 3});
  const std::string msg = error_of([&] { x.size(2); });
  CHECK_THAT(msg, Contains("size: dim 2 is out of range for a 2-d tensor (expected -2..1)"));
  CHECK_THAT(error_of([&] { x.size(-3); }), Contains("dim -3"));
  CHECK(x.size(-1) == 3);
  CHECK_THAT(error_of([] { normalize_dim(1, 0, "my_op"); }),
             Contains("my_op: dim 1 is out of range for a 0-d tensor (expected -1..0)"));
  CHECK_THAT(error_of([&] { sum(x, {5}); }), Contains("sum"));
  CHECK_THAT(error_of([&] { transpose(x, 0, 2); }), Contains("dim 2"));
  CHECK_THAT(error_of([] { zeros({1, 1, 1, 1, 1, 1, 1, 1, 1}); }),
             Contains("empty: tensors have at most 8 dims, got shape [1, 1, 1, 1, 1, 1, 1, 1, 1]"));
  CHECK_THAT(error_of([] { tensor({1, 2}, {-2}); }), Contains("from_vector: negative size in shape [-2]"));
}

TEST_CASE("errors: CUDA tensors without a CUDA device", "[errors]") {
  if (cuda_available()) return;  // the message is about a missing device or build
  // Either the build has no CUDA ("built without CUDA") or the runtime finds no device.
  auto check_msg = [](const std::string& msg) {
    INFO(msg);
    const bool no_build = msg.find("built without CUDA") != std::string::npos;
    const bool no_device = msg.find("device") != std::string::npos ||
                           msg.find("CUDA error") != std::string::npos;
    CHECK((no_build || no_device));
  };
  check_msg(error_of([] { zeros({2}, TensorOptions{}.with_device(kCUDA)); }));
  check_msg(error_of([] { tensor({1.0}, {1}).to(kCUDA); }));
  check_msg(error_of([] { rand({3}, TensorOptions{}.with_device(kCUDA)); }));
#ifndef CVG_WITH_CUDA
  CHECK_THAT(error_of([] { zeros({2}, TensorOptions{}.with_device(kCUDA)); }),
             Contains("allocate: cvgrad was built without CUDA, cannot allocate on cuda"));
  CHECK_THAT(error_of([] { synchronize(kCUDA); }),
             Contains("synchronize: cuda requested, but this build has no CUDA"));
#endif
  synchronize(kCPU);  // nothing to wait for, and no error
  CHECK_THAT(error_of([] { Device::parse("gpu"); }),
             Contains("Device: cannot parse device 'gpu' (expected cpu, cuda or cuda:N)"));
  CHECK_THAT(error_of([] { Device::parse("cuda:x"); }), Contains("'cuda:x'"));
  CHECK(Device::parse("cuda:1").index == 1);
  CHECK(Device::parse("cuda:1").str() == "cuda:1");
  CHECK_THAT(error_of([] { common_device("my_op", {Tensor(), Tensor()}); }),
             Contains("my_op: no defined input tensor"));
  CHECK(common_device("my_op", {Tensor(), zeros({1})}) == kCPU);
}

TEST_CASE("errors: undefined tensors", "[errors]") {
  Tensor u;
  CHECK_FALSE(u.defined());
  CHECK_THAT(error_of([&] { u.shape(); }), Contains("undefined tensor"));
  CHECK_THAT(error_of([&] { u.shape(); }), Contains("shape"));
  CHECK_THAT(error_of([&] { u.numel(); }), Contains("undefined tensor"));
  CHECK_THAT(error_of([&] { u.dtype(); }), Contains("dtype"));
  CHECK_THAT(error_of([&] { u.requires_grad(); }), Contains("requires_grad"));
  CHECK_THAT(error_of([&] { u.backward(); }), Contains("backward"));
  CHECK_THAT(error_of([&] { u.grad(); }), Contains("grad"));
  CHECK_THAT(error_of([&] { zeros({2}).copy_(u); }), Contains("copy_: undefined tensor"));
  CHECK_THAT(error_of([&] { u.fill_(1.0); }), Contains("fill_"));
}

TEST_CASE("errors: dtype mismatches", "[errors]") {
  Tensor f = zeros({2});
  const std::string msg = error_of([&] { f.data<double>(); });
  CHECK_THAT(msg, Contains("Tensor::data: requested float64 from a float32 tensor"));
  CHECK_THAT(error_of([&] { from_vector<int32_t>({1}, {1}, TensorOptions{}.with_dtype(DType::int32)).data<int64_t>(); }),
             Contains("requested int64 from a int32 tensor"));
  CHECK_THAT(error_of([] { zeros({2}, TensorOptions{}.with_dtype(DType::int32).with_requires_grad(true)); }),
             Contains("set_requires_grad: only floating tensors can require grad, got int32"));
  CHECK_THAT(error_of([] { accumulate_grad(zeros({2}), zeros({2}, kF64)); }),
             Contains("accumulate_grad: gradients [2] float32 and [2] float64 differ"));
  CHECK_THAT(error_of([] { rand({2}, TensorOptions{}.with_dtype(DType::uint8)); }),
             Contains("rand: expected a floating-point tensor (float32 or float64), got uint8"));
}

TEST_CASE("errors: item, backward and grad arguments", "[errors]") {
  CHECK_THAT(error_of([] { zeros({2, 3}).item(); }),
             Contains("item: expected a tensor with one element, got shape [2, 3]"));
  Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3}, kF64.with_requires_grad(true));
  Tensor y = x * 2.0;
  const std::string msg = error_of([&] { y.backward(); });
  CHECK_THAT(msg, Contains("backward: a gradient can be created implicitly only for single-element outputs"));
  CHECK_THAT(msg, Contains("shape [2, 3]"));
  CHECK_THAT(error_of([&] { grad({y}, {x}); }), Contains("grad: a gradient can be created implicitly"));
  CHECK_THAT(error_of([&] { backward({y}, {ones_like(y), ones_like(y)}); }),
             Contains("backward: got 2 grad_outputs for 1 outputs"));
  CHECK_THAT(error_of([&] { grad({sum(y)}, {tensor({1.0}, {1}, kF64)}); }),
             Contains("grad: input 0 does not require grad"));
  CHECK_THAT(error_of([&] { backward({}); }), Contains("backward: no outputs given"));
  CHECK_THAT(error_of([&] { x.set_grad(zeros({3}, kF64)); }),
             Contains("set_grad: gradient shape [3] does not match tensor shape [2, 3]"));
  CHECK_THAT(error_of([&] { x.set_grad(zeros({2, 3})); }),
             Contains("set_grad: gradient dtype float32 does not match tensor dtype float64"));
  CHECK_THAT(error_of([&] { x.fill_(0.0); }),
             Contains("fill_: in-place change of a tensor that requires grad (shape [2, 3])"));
  CHECK_THAT(error_of([&] { y.copy_(x); }), Contains("copy_: in-place change"));
}
