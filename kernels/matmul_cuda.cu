// CUDA matrix products: bmm_cuda (kernels/matmul.h) and the SGEMM entry points of
// kernels/sgemm_cuda.h. The kernels are in kernels/sgemm_versions.cuh; this file checks the
// operands, picks a launch configuration and launches.
//
//   float32: the handwritten SGEMM (default version kSgemmDefaultVersion), or cuBLAS when
//            CVG_GEMM=cublas; CVG_SGEMM_VERSION=<n> selects another handwritten version.
//   float64: the shared-memory tiled kernel (v2's template with 16x16 tiles); simple and exact
//            enough for the float64 reference paths (gradcheck), not tuned.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/cuda_check.h"
#include "kernels/matmul.h"
#include "kernels/sgemm_cuda.h"
#include "kernels/sgemm_versions.cuh"

namespace cvg {

namespace {

// Problem geometry of a contiguous batched product.
struct Gemm {
  int64_t batch;
  int M, N, K;
  int64_t sa, sb, sc;  // batch strides in elements
};

Gemm check_operands(const char* op, const Tensor& a, const Tensor& b, const Tensor& out,
                    DType dt) {
  CVG_CHECK(a.dim() == 3 && b.dim() == 3 && out.dim() == 3, op,
            ": expects a [B, M, K], b [B, K, N], out [B, M, N], got a ", a.shape(), ", b ",
            b.shape(), ", out ", out.shape());
  CVG_CHECK(a.is_cuda() && b.is_cuda() && out.is_cuda(), op,
            ": operands must be CUDA tensors, got a on ", a.device(), ", b on ", b.device(),
            ", out on ", out.device());
  CVG_CHECK(a.dtype() == dt && b.dtype() == dt && out.dtype() == dt, op, ": expects ",
            dtype_name(dt), " operands, got a ", dtype_name(a.dtype()), ", b ",
            dtype_name(b.dtype()), ", out ", dtype_name(out.dtype()));
  CVG_CHECK(a.is_contiguous() && b.is_contiguous() && out.is_contiguous(), op,
            ": operands must be contiguous");
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  CVG_CHECK(b.size(0) == B && b.size(1) == K && out.size(0) == B && out.size(1) == M &&
                out.size(2) == N,
            op, ": shape mismatch: a ", a.shape(), ", b ", b.shape(), ", out ", out.shape());
  constexpr int64_t kMaxDim = INT32_MAX;
  CVG_CHECK(M <= kMaxDim && N <= kMaxDim && K <= kMaxDim, op,
            ": matrix dimensions must be below 2^31, got a ", a.shape(), ", b ", b.shape());
  return Gemm{B, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), M * K, K * N,
              M * N};
}

// gridDim.z is limited to 65535: larger batches are launched in chunks.
constexpr int64_t kMaxGridZ = 65535;

template <typename F, typename Launch>
void for_batch_chunks(const Gemm& g, const F* a, const F* b, F* c, Launch&& launch) {
  for (int64_t b0 = 0; b0 < g.batch; b0 += kMaxGridZ) {
    const int z = static_cast<int>(std::min(kMaxGridZ, g.batch - b0));
    launch(z, a + b0 * g.sa, b + b0 * g.sb, c + b0 * g.sc);
  }
}

unsigned blocks(int n, int tile) { return static_cast<unsigned>((n + tile - 1) / tile); }

// Row tiles go along gridDim.y, which is limited to 65535 blocks.
unsigned row_blocks(int m, int tile, const char* op) {
  const unsigned b = blocks(m, tile);
  CVG_CHECK(b <= 65535u, op, ": ", m, " rows need ", b, " row tiles of ", tile,
            ", more than the grid allows (65535)");
  return b;
}

int sm_count() {
  static const int n = [] {
    int dev = 0, count = 0;
    CVG_CUDA_CHECK(cudaGetDevice(&dev), "sgemm");
    CVG_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev), "sgemm");
    return count;
  }();
  return n;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// v4/v5 launch: 128x128 tiles, or 64x64 ones when 128x128 tiles would not give every SM a
// block (a 1024^2 product has only 64 tiles of 128x128 for 132 SMs on an H100).
template <int BM, int BN, bool VEC>
struct V4 {
  static constexpr auto fn = sgemm::sgemm_v4_vec<BM, BN, VEC>;
};
template <int BM, int BN, bool VEC>
struct V5 {
  static constexpr auto fn = sgemm::sgemm_v5_dbuf<BM, BN, VEC>;
};

template <template <int, int, bool> class K, int BM, int BN>
void launch_tiled_shape(const Gemm& g, const float* a, const float* b, float* c, bool vec) {
  const dim3 block(sgemm::TileShape<BM, BN>::threads);
  for_batch_chunks(g, a, b, c, [&](int z, const float* pa, const float* pb, float* pc) {
    const dim3 grid(blocks(g.N, BN), row_blocks(g.M, BM, "sgemm_cuda"), z);
    if (vec)
      K<BM, BN, true>::fn<<<grid, block>>>(g.M, g.N, g.K, pa, g.sa, pb, g.sb, pc, g.sc);
    else
      K<BM, BN, false>::fn<<<grid, block>>>(g.M, g.N, g.K, pa, g.sa, pb, g.sb, pc, g.sc);
  });
}

template <template <int, int, bool> class K>
void launch_tiled(const Gemm& g, const float* a, const float* b, float* c) {
  const bool vec = g.K % 4 == 0 && g.N % 4 == 0 && aligned16(a) && aligned16(b) && aligned16(c);
  const int64_t big_tiles = g.batch * blocks(g.M, 128) * blocks(g.N, 128);
  if (big_tiles >= sm_count())
    launch_tiled_shape<K, 128, 128>(g, a, b, c, vec);
  else
    launch_tiled_shape<K, 64, 64>(g, a, b, c, vec);
}

void launch_sgemm(int version, const Gemm& g, const float* a, const float* b, float* c) {
  switch (version) {
    case 1:
      for_batch_chunks(g, a, b, c, [&](int z, const float* pa, const float* pb, float* pc) {
        const dim3 block(32, 8);
        const dim3 grid(blocks(g.N, 32), row_blocks(g.M, 8, "sgemm_cuda"), z);
        sgemm::sgemm_v1_naive<<<grid, block>>>(g.M, g.N, g.K, pa, g.sa, pb, g.sb, pc, g.sc);
      });
      break;
    case 2:
      for_batch_chunks(g, a, b, c, [&](int z, const float* pa, const float* pb, float* pc) {
        const dim3 grid(blocks(g.N, 32), row_blocks(g.M, 32, "sgemm_cuda"), z);
        sgemm::gemm_v2_smem<float, 32>
            <<<grid, dim3(32, 32)>>>(g.M, g.N, g.K, pa, g.sa, pb, g.sb, pc, g.sc);
      });
      break;
    case 3:
      for_batch_chunks(g, a, b, c, [&](int z, const float* pa, const float* pb, float* pc) {
        const dim3 grid(blocks(g.N, sgemm::V3_BN), row_blocks(g.M, sgemm::V3_BM, "sgemm_cuda"), z);
        sgemm::sgemm_v3_regtile<<<grid, sgemm::V3_THREADS>>>(g.M, g.N, g.K, pa, g.sa, pb, g.sb,
                                                             pc, g.sc);
      });
      break;
    case 4: launch_tiled<V4>(g, a, b, c); break;
    case 5: launch_tiled<V5>(g, a, b, c); break;
    default: fail("sgemm_cuda: unknown version ", version, " (expected 1 .. ", kSgemmVersions, ")");
  }
  CVG_CUDA_CHECK_LAUNCH("sgemm_cuda");
}

// ---- cuBLAS -------------------------------------------------------------------------------
const char* cublas_status_name(cublasStatus_t s) { return cublasGetStatusString(s); }

#define CVG_CUBLAS_CHECK(expr)                                                           \
  do {                                                                                   \
    const cublasStatus_t cvg_st_ = (expr);                                               \
    if (cvg_st_ != CUBLAS_STATUS_SUCCESS)                                                \
      ::cvg::fail("sgemm_cublas: ", #expr, " failed: ", cublas_status_name(cvg_st_),     \
                  " at ", __FILE__, ":", __LINE__);                                      \
  } while (0)

// One handle per device, created on first use and kept for the life of the process (cuBLAS
// handles are expensive to create; destroying them at exit races with the CUDA runtime's own
// teardown). Default stream, default math mode (FP32, no TF32) so it is a like-for-like
// baseline for the handwritten FP32 kernels.
cublasHandle_t cublas_handle() {
  constexpr int kMaxDevices = 64;
  static cublasHandle_t handles[kMaxDevices] = {};
  int dev = 0;
  CVG_CUDA_CHECK(cudaGetDevice(&dev), "sgemm_cublas");
  CVG_CHECK(dev < kMaxDevices, "sgemm_cublas: device index ", dev, " out of range");
  if (!handles[dev]) {
    CVG_CUBLAS_CHECK(cublasCreate(&handles[dev]));
    CVG_CUBLAS_CHECK(cublasSetMathMode(handles[dev], CUBLAS_DEFAULT_MATH));
  }
  return handles[dev];
}

void launch_cublas(const Gemm& g, const float* a, const float* b, float* c) {
  if (g.K == 0) {  // an empty product is 0; cuBLAS would also reject lda = K = 0
    CVG_CUDA_CHECK(cudaMemset(c, 0, static_cast<size_t>(g.batch * g.sc) * sizeof(float)),
                   "sgemm_cublas");
    return;
  }
  // cuBLAS is column-major: a row-major C[M,N] = A B is the column-major C^T[N,M] = B^T A^T,
  // where the row-major buffers of B and A already are B^T [N,K] and A^T [K,M] column-major.
  const float one = 1.f, zero = 0.f;
  CVG_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_N, g.N, g.M,
                                             g.K, &one, b, g.N, g.sb, a, g.K, g.sa, &zero, c,
                                             g.N, g.sc, static_cast<int>(g.batch)));
}

// Which float32 GEMM bmm_cuda runs: 0 = cuBLAS, 1 .. kSgemmVersions = handwritten.
int float32_gemm_choice() {
  static const int choice = [] {
    const char* gemm = std::getenv("CVG_GEMM");
    if (gemm && std::strcmp(gemm, "cublas") == 0) return 0;
    CVG_CHECK(!gemm || gemm[0] == '\0' || std::strcmp(gemm, "cvgrad") == 0,
              "bmm_cuda: CVG_GEMM must be 'cublas' or 'cvgrad', got '", gemm, "'");
    const char* v = std::getenv("CVG_SGEMM_VERSION");
    if (!v || v[0] == '\0') return kSgemmDefaultVersion;
    const int n = std::atoi(v);
    CVG_CHECK(n >= 1 && n <= kSgemmVersions, "bmm_cuda: CVG_SGEMM_VERSION must be 1 .. ",
              kSgemmVersions, ", got '", v, "'");
    return n;
  }();
  return choice;
}

}  // namespace

const char* sgemm_version_name(int version) {
  switch (version) {
    case 1: return "v1_naive";
    case 2: return "v2_smem_tiling";
    case 3: return "v3_register_tiling";
    case 4: return "v4_float4_conflict_free";
    case 5: return "v5_double_buffered";
    default: return "unknown";
  }
}

void sgemm_cuda(int version, const Tensor& a, const Tensor& b, const Tensor& out) {
  const Gemm g = check_operands("sgemm_cuda", a, b, out, DType::float32);
  if (g.batch == 0 || g.M == 0 || g.N == 0) return;
  launch_sgemm(version, g, a.data<float>(), b.data<float>(), out.data<float>());
}

void sgemm_cublas(const Tensor& a, const Tensor& b, const Tensor& out) {
  const Gemm g = check_operands("sgemm_cublas", a, b, out, DType::float32);
  if (g.batch == 0 || g.M == 0 || g.N == 0) return;
  CVG_CHECK(g.batch <= INT32_MAX, "sgemm_cublas: batch ", g.batch, " too large");
  launch_cublas(g, a.data<float>(), b.data<float>(), out.data<float>());
}

void bmm_cuda(const Tensor& a, const Tensor& b, const Tensor& out) {
  CVG_CHECK(a.defined() && b.defined() && out.defined(), "bmm_cuda: undefined operand");
  CVG_CHECK(a.dtype() == DType::float32 || a.dtype() == DType::float64,
            "bmm_cuda: expects float32 or float64 operands, got ", dtype_name(a.dtype()));
  if (a.dtype() == DType::float32) {
    const int choice = float32_gemm_choice();
    if (choice == 0)
      sgemm_cublas(a, b, out);
    else
      sgemm_cuda(choice, a, b, out);
    return;
  }
  const Gemm g = check_operands("bmm_cuda", a, b, out, DType::float64);
  if (g.batch == 0 || g.M == 0 || g.N == 0) return;
  for_batch_chunks(g, a.data<double>(), b.data<double>(), out.data<double>(),
                   [&](int z, const double* pa, const double* pb, double* pc) {
                     const dim3 grid(blocks(g.N, 16), row_blocks(g.M, 16, "bmm_cuda"), z);
                     sgemm::gemm_v2_smem<double, 16>
                         <<<grid, dim3(16, 16)>>>(g.M, g.N, g.K, pa, g.sa, pb, g.sb, pc, g.sc);
                   });
  CVG_CUDA_CHECK_LAUNCH("bmm_cuda");
}

}  // namespace cvg
