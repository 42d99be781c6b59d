// The CUDA runtime on a real device (skipped without a GPU, see tests/main_cuda.cpp): device
// discovery, the caching allocator's CUDA instance, checked-call error messages, host<->device
// copies (including the pinned staging path), and every handwritten SGEMM version, cuBLAS and
// the float64 GEMM against a float64 CPU reference on shapes that exercise the tile edges.
#include <catch2/catch.hpp>

#ifdef CVG_WITH_CUDA

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/cuda_device.h"
#include "core/cuda_runtime.h"
#include "core/rng.h"
#include "kernels/matmul.h"
#include "kernels/sgemm_cuda.h"

using namespace cvg;

namespace {

struct Shape3 {
  int64_t B, M, N, K;
};

// Shapes: degenerate, odd (no tile divides them), square, bigger-than-a-tile with ragged
// edges, float4-friendly (K, N multiples of 4) with ragged M, batched, and batches large
// enough that v4/v5 pick 128x128 tiles (>= one tile per SM) with ragged edges, scalar and
// float4 paths. Small enough for compute-sanitizer racecheck ([sgemm]).
const std::vector<Shape3> kShapes = {
    {1, 1, 1, 1},      {1, 17, 33, 9},   {1, 128, 128, 128}, {1, 257, 511, 129},
    {1, 300, 260, 68}, {3, 65, 47, 33},  {4, 129, 132, 256}, {33, 257, 260, 33},
    {40, 200, 132, 68},
    {2, 5, 7, 0},  // K = 0: the product is all zeros
};
// Larger ones ([sgemm_large]): many K steps.
const std::vector<Shape3> kLargeShapes = {{1, 1024, 1024, 64}, {1, 513, 1031, 1024}};

// Reference C = A B in double on the CPU, and a per-element error bound: float32 summation of
// K products can be off by about K * eps * sum |a_ik b_kj|.
struct Reference {
  std::vector<double> c, bound;
};

Reference reference(const Tensor& a, const Tensor& b, const Shape3& s, double eps) {
  const std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  Reference r;
  r.c.assign(static_cast<size_t>(s.B * s.M * s.N), 0.0);
  r.bound.assign(r.c.size(), 0.0);
  for (int64_t z = 0; z < s.B; ++z)
    for (int64_t i = 0; i < s.M; ++i)
      for (int64_t j = 0; j < s.N; ++j) {
        double acc = 0, mag = 0;
        for (int64_t k = 0; k < s.K; ++k) {
          const double p = av[(z * s.M + i) * s.K + k] * bv[(z * s.K + k) * s.N + j];
          acc += p;
          mag += std::fabs(p);
        }
        const size_t o = static_cast<size_t>((z * s.M + i) * s.N + j);
        r.c[o] = acc;
        r.bound[o] = 2.0 * (s.K + 1) * eps * mag + 1e-30;
      }
  return r;
}

// Largest |got - ref| / bound; <= 1 passes.
double worst_ratio(const Tensor& got, const Reference& r) {
  const std::vector<double> g = got.to_vector<double>();
  REQUIRE(g.size() == r.c.size());
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i])) return INFINITY;
    worst = std::max(worst, std::fabs(g[i] - r.c[i]) / r.bound[i]);
  }
  return worst;
}

std::string label(const Shape3& s) {
  std::ostringstream os;
  os << "B=" << s.B << " M=" << s.M << " N=" << s.N << " K=" << s.K;
  return os.str();
}

TensorOptions cuda32() { return TensorOptions{}.with_device(kCUDA); }

}  // namespace

TEST_CASE("cuda runtime: device info is sane and printable", "[cuda]") {
  REQUIRE(cuda_device_count() >= 1);
  const CudaDeviceInfo d = cuda_device_info(0);
  CHECK(!d.name.empty());
  CHECK(d.cc_major >= 7);
  CHECK(d.sm_count > 0);
  CHECK(d.warp_size == 32);
  CHECK(d.total_memory > (size_t(1) << 30));
  CHECK(d.free_memory <= d.total_memory);
  CHECK(d.l2_cache_bytes > 0);
  CHECK(d.clock_khz > 0);
  CHECK(d.peak_fp32_gflops() > 1000.0);
  std::ostringstream os;
  print_cuda_devices(os);
  CHECK(os.str().find(d.name) != std::string::npos);
  std::printf("%s", os.str().c_str());  // into the test log of scripts/gpu-check
  CHECK_THROWS_AS(cuda_device_info(cuda_device_count()), Error);
}

TEST_CASE("cuda runtime: CVG_CUDA_CHECK names the op, the call and the place", "[cuda]") {
  try {
    CVG_CUDA_CHECK(cudaSetDevice(1 << 20), "my_op");
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("my_op") != std::string::npos);
    CHECK(msg.find("cudaSetDevice") != std::string::npos);
    CHECK(msg.find("test_cuda_runtime_cuda.cpp") != std::string::npos);
  }
  CHECK(cudaGetLastError() == cudaSuccess);  // the error was not sticky
}

TEST_CASE("cuda runtime: the caching allocator reuses freed device memory", "[cuda]") {
  cuda_synchronize();
  const CudaMemoryStats before = cuda_memory_stats(0);
  const void* first = nullptr;
  {
    Tensor t = Tensor::empty({1000, 1000}, cuda32());  // 4 MB: a large (2 MiB) class
    first = t.raw_data();
    const CudaMemoryStats during = cuda_memory_stats(0);
    CHECK(during.allocated == before.allocated + (size_t(4) << 20));  // the 4 MiB class
    CHECK(during.peak_allocated >= during.allocated);
  }
  const CudaMemoryStats after_free = cuda_memory_stats(0);
  CHECK(after_free.allocated == before.allocated);
  Tensor again = Tensor::empty({999, 1001}, cuda32());  // same 4 MiB class
  const CudaMemoryStats after = cuda_memory_stats(0);
  if (cuda_caching_enabled()) {
    CHECK(again.raw_data() == first);
    CHECK(after.num_cache_hits == after_free.num_cache_hits + 1);
    CHECK(after.num_backend_allocs == after_free.num_backend_allocs);
  } else {
    CHECK(after.num_backend_allocs == after_free.num_backend_allocs + 1);
    CHECK(after.cached == 0);
  }
  // A loop of same-size temporaries does not grow the reservation.
  cuda_synchronize();
  const size_t reserved = cuda_memory_stats(0).reserved;
  for (int i = 0; i < 50; ++i) {
    Tensor x = Tensor::empty({256, 256}, cuda32());
    x.fill_(1.0);
  }
  if (cuda_caching_enabled()) CHECK(cuda_memory_stats(0).reserved <= reserved + (size_t(1) << 20));
  cuda_empty_cache();
  CHECK(cuda_memory_stats(0).cached == 0);
}

TEST_CASE("cuda runtime: out of memory is an Error that reports the allocator's numbers",
          "[cuda]") {
  const CudaDeviceInfo d = cuda_device_info(0);
  const int64_t too_many = static_cast<int64_t>(d.total_memory / 4) * 4;  // 4x the memory
  try {
    Tensor t = Tensor::empty({too_many}, cuda32());
    FAIL("expected out of memory");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("out of memory") != std::string::npos);
    CHECK(msg.find("reserved") != std::string::npos);
    CHECK(msg.find("cuda:0") != std::string::npos);
  }
  CHECK(cudaGetLastError() == cudaSuccess);
  Tensor ok = ones({16}, cuda32());  // the device is still usable
  CHECK(ok.to(kCPU).to_vector<float>()[15] == 1.0f);
}

TEST_CASE("cuda runtime: to(cuda) / to(cpu) round trips, small and staged", "[cuda]") {
  manual_seed(5);
  // 3 sizes: below the pinned-staging threshold, several 4 MiB chunks with a ragged tail.
  for (int64_t n : {int64_t(0), int64_t(7), int64_t(3) * 1024 * 1024 + 123}) {
    INFO("n = " << n);
    const Tensor x = randn({n}, TensorOptions{}.with_dtype(DType::float64));
    const Tensor y = x.to(kCUDA);
    CHECK(y.is_cuda());
    const Tensor back = y.to(kCPU);
    CHECK(max_abs_diff(back, x) == 0.0);
  }
  // Non-contiguous source and integer dtype.
  const Tensor m = arange(0, 60, 1, TensorOptions{}.with_dtype(DType::int64));
  const Tensor v = make_view(m, {5, 4}, {1, 5}, 0);  // a transposed view of a [4, 5]
  const Tensor vb = v.to(kCUDA).to(kCPU);
  CHECK(vb.to_vector<int64_t>() == v.to_vector<int64_t>());
}

namespace {

void check_all_versions(const std::vector<Shape3>& shapes) {
  const double eps = 1.2e-7;  // float32 unit roundoff is 6e-8; leave a factor 2
  for (const Shape3& s : shapes) {
    const Tensor a = randn({s.B, s.M, s.K}), b = randn({s.B, s.K, s.N});
    const Reference ref = reference(a, b, s, eps);
    const Tensor ad = a.to(kCUDA), bd = b.to(kCUDA);
    for (int v = 1; v <= kSgemmVersions; ++v) {
      INFO(label(s) << " version " << v << " " << sgemm_version_name(v));
      Tensor out = full({s.B, s.M, s.N}, NAN, cuda32());  // stale values must be overwritten
      sgemm_cuda(v, ad, bd, out);
      CHECK(worst_ratio(out.to(kCPU), ref) <= 1.0);
    }
    INFO(label(s) << " cuBLAS");
    Tensor out = full({s.B, s.M, s.N}, NAN, cuda32());
    sgemm_cublas(ad, bd, out);
    CHECK(worst_ratio(out.to(kCPU), ref) <= 1.0);
  }
}

}  // namespace

TEST_CASE("cuda sgemm: every version matches a float64 reference on awkward shapes",
          "[cuda][sgemm]") {
  manual_seed(11);
  check_all_versions(kShapes);
}

TEST_CASE("cuda sgemm: every version matches a float64 reference on larger shapes",
          "[cuda][sgemm_large]") {
  manual_seed(14);
  check_all_versions(kLargeShapes);
}

TEST_CASE("cuda sgemm: bmm_cuda's float32 default agrees with cuBLAS at a large size",
          "[cuda][sgemm_large]") {
  manual_seed(12);
  const Tensor a = randn({2, 1000, 777}).to(kCUDA), b = randn({2, 777, 1200}).to(kCUDA);
  Tensor mine = Tensor::empty({2, 1000, 1200}, cuda32());
  Tensor theirs = Tensor::empty({2, 1000, 1200}, cuda32());
  bmm_cuda(a, b, mine);
  sgemm_cublas(a, b, theirs);
  // Both are float32 sums of 777 products of N(0,1) values (|c| ~ 28): they differ by rounding.
  CHECK(max_abs_diff(mine.to(kCPU), theirs.to(kCPU)) < 1e-3);
}

TEST_CASE("cuda gemm: float64 bmm_cuda matches the reference to float64 rounding", "[cuda]") {
  manual_seed(13);
  for (const Shape3& s : kShapes) {
    INFO(label(s));
    const TensorOptions f64 = TensorOptions{}.with_dtype(DType::float64);
    const Tensor a = randn({s.B, s.M, s.K}, f64), b = randn({s.B, s.K, s.N}, f64);
    const Reference ref = reference(a, b, s, 1.2e-16);
    Tensor out = full({s.B, s.M, s.N}, NAN, f64.with_device(kCUDA));
    bmm_cuda(a.to(kCUDA), b.to(kCUDA), out);
    CHECK(worst_ratio(out.to(kCPU), ref) <= 1.0);
  }
}

TEST_CASE("cuda sgemm: bad arguments are Errors", "[cuda][sgemm]") {
  const Tensor a = zeros({1, 4, 3}, cuda32()), b = zeros({1, 3, 5}, cuda32());
  Tensor out = zeros({1, 4, 5}, cuda32());
  CHECK_THROWS_AS(sgemm_cuda(0, a, b, out), Error);
  CHECK_THROWS_AS(sgemm_cuda(kSgemmVersions + 1, a, b, out), Error);
  CHECK_THROWS_AS(sgemm_cuda(1, a, zeros({1, 4, 5}, cuda32()), out), Error);  // K mismatch
  CHECK_THROWS_AS(sgemm_cuda(1, a.to(kCPU), b, out), Error);                   // device
  CHECK_THROWS_AS(sgemm_cuda(1, a, b.to(DType::float64), out), Error);         // dtype
}

#endif  // CVG_WITH_CUDA
