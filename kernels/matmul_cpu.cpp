// CPU batched GEMM: out[b] = a[b] @ b[b] for strided a [B, M, K], b [B, K, N] and a contiguous
// out [B, M, N].
//
// With OpenBLAS (CVG_WITH_BLAS) each batch is one cblas_?gemm call in row-major mode. A matrix
// whose rows are dense (column stride 1) is passed as is with its row stride as the leading
// dimension; one whose columns are dense (row stride 1, i.e. a transposed view) is passed with
// the transpose flag and its column stride as the leading dimension. Only a matrix that is
// neither (e.g. a strided slice in both dims) is copied first.
//
// Without BLAS, and callable directly for tests, gemm_fallback_cpu: a loop blocked for the
// caches. For each block of kKc rows x kNc columns of b it copies ("packs") that panel into a
// dense buffer, so the innermost loop streams contiguous memory whatever b's strides, and then
// updates kMc rows of the output at a time:  C[i, j0:j0+nc] += a[i, p] * panel[p, :].
// Work is split over (batch, block of kMc rows); each output element is written by one task and
// summed over k in increasing order, so results do not depend on the thread count.
#include <algorithm>
#include <climits>
#include <vector>

#include "core/autograd.h"
#include "core/parallel.h"
#include "kernels/blas_threads.h"
#include "kernels/matmul.h"

#ifdef CVG_WITH_BLAS
#include <cblas.h>
#endif

namespace cvg {

namespace {

constexpr int64_t kMc = 64;   // rows of the output per task
constexpr int64_t kKc = 256;  // depth of a packed panel of b
constexpr int64_t kNc = 512;  // width of a packed panel of b (kKc * kNc doubles = 1 MiB)

template <typename T>
void gemm_blocked(const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t B = a.shape()[0], M = a.shape()[1], K = a.shape()[2], N = b.shape()[2];
  const int64_t sab = a.strides()[0], sam = a.strides()[1], sak = a.strides()[2];
  const int64_t sbb = b.strides()[0], sbk = b.strides()[1], sbn = b.strides()[2];
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* pc = out.data<T>();
  const int64_t mblocks = (M + kMc - 1) / kMc;
  parallel_for(B * mblocks, 1, [&](int64_t t0, int64_t t1) {
    std::vector<T> panel(static_cast<size_t>(std::min(K, kKc) * std::min(N, kNc)));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t bi = t / mblocks;
      const int64_t i0 = (t % mblocks) * kMc, i1 = std::min(M, i0 + kMc);
      const T* A = pa + bi * sab;
      const T* Bm = pb + bi * sbb;
      T* C = pc + bi * M * N;
      std::fill(C + i0 * N, C + i1 * N, T(0));
      for (int64_t j0 = 0; j0 < N; j0 += kNc) {
        const int64_t nc = std::min(kNc, N - j0);
        for (int64_t p0 = 0; p0 < K; p0 += kKc) {
          const int64_t kc = std::min(kKc, K - p0);
          for (int64_t p = 0; p < kc; ++p)
            for (int64_t j = 0; j < nc; ++j)
              panel[p * nc + j] = Bm[(p0 + p) * sbk + (j0 + j) * sbn];
          for (int64_t i = i0; i < i1; ++i) {
            T* crow = C + i * N + j0;
            const T* arow = A + i * sam + p0 * sak;
            for (int64_t p = 0; p < kc; ++p) {
              const T aip = arow[p * sak];
              const T* prow = panel.data() + p * nc;
              for (int64_t j = 0; j < nc; ++j) crow[j] += aip * prow[j];
            }
          }
        }
      }
    }
  });
}

#ifdef CVG_WITH_BLAS
// Rows per single-threaded BLAS call of a small product (see gemm_blas).
constexpr int64_t kSmallGemmRows = 64;

// How BLAS can read a rows x cols matrix with strides (rs, cs), in row-major mode: as is
// (trans = false, leading dim = rs) or as the transpose of a row-major matrix (trans = true,
// leading dim = cs). The stride of a size-1 dim is never followed, so it is free.
struct BlasLayout {
  bool ok = false;
  bool trans = false;
  int64_t ld = 0;
};
BlasLayout blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  if (cols == 1 || cs == 1) {
    const int64_t ld = rows == 1 ? std::max<int64_t>(1, cols) : rs;
    if (ld >= std::max<int64_t>(1, cols) && ld <= INT_MAX) return {true, false, ld};
  }
  if (rows == 1 || rs == 1) {
    const int64_t ld = cols == 1 ? std::max<int64_t>(1, rows) : cs;
    if (ld >= std::max<int64_t>(1, rows) && ld <= INT_MAX) return {true, true, ld};
  }
  return {};
}

template <typename T>
void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, const T* A, int lda,
               const T* B, int ldb, T* C, int ldc) {
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, A, lda, B, ldb, 0.0, C, ldc);
}

// Returns false when the sizes exceed BLAS's 32-bit integers (the blocked loop takes over).
template <typename T>
bool gemm_blas(Tensor a, Tensor b, const Tensor& out) {
  const int64_t B = a.shape()[0], M = a.shape()[1], K = a.shape()[2], N = b.shape()[2];
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX) return false;
  BlasLayout la = blas_layout(M, K, a.strides()[1], a.strides()[2]);
  BlasLayout lb = blas_layout(K, N, b.strides()[1], b.strides()[2]);
  {
    NoGradGuard no_grad;
    if (!la.ok) {
      a = a.contiguous();
      la = blas_layout(M, K, a.strides()[1], a.strides()[2]);
    }
    if (!lb.ok) {
      b = b.contiguous();
      lb = blas_layout(K, N, b.strides()[1], b.strides()[2]);
    }
  }
  if (!la.ok || !lb.ok) return false;
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* pc = out.data<T>();
  const auto call = [&](int64_t bi, int64_t r0, int64_t rows) {
    // Row r of A starts at r * ld as stored, or at r when BLAS reads it transposed.
    gemm_call<T>(la.trans ? CblasTrans : CblasNoTrans, lb.trans ? CblasTrans : CblasNoTrans,
                 static_cast<int>(rows), static_cast<int>(N), static_cast<int>(K),
                 pa + bi * a.strides()[0] + r0 * (la.trans ? 1 : la.ld), static_cast<int>(la.ld),
                 pb + bi * b.strides()[0], static_cast<int>(lb.ld), pc + (bi * M + r0) * N,
                 static_cast<int>(N));
  };
  if (static_cast<double>(B) * static_cast<double>(M) * static_cast<double>(N) *
          static_cast<double>(K) >= kBlasThreadedMinFlops) {
    // BLAS threads internally, so batches run one after another.
    for (int64_t bi = 0; bi < B; ++bi) call(bi, 0, M);
    return true;
  }
  // Small products run BLAS single-threaded (kernels/blas_threads.h: its idle threads would spin
  // against the next op's), split over parallel_for's threads by batch and by blocks of
  // kSmallGemmRows rows instead. The blocks depend on the shape only, so every element is
  // computed by the same call whatever the thread count.
  BlasSingleThreaded single;
  const int64_t blocks = (M + kSmallGemmRows - 1) / kSmallGemmRows;
  parallel_for(B * blocks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = (t % blocks) * kSmallGemmRows;
      call(t / blocks, r0, std::min(kSmallGemmRows, M - r0));
    }
  });
  return true;
}
#endif

}  // namespace

void gemm_fallback_cpu(const Tensor& a, const Tensor& b, const Tensor& out) {
  CVG_CHECK(a.dim() == 3 && b.dim() == 3 && out.dim() == 3 && out.is_contiguous(),
            "gemm_fallback_cpu: expected 3-D a, b and a contiguous 3-D out");
  dispatch_floating(a.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    gemm_blocked<T>(a, b, out);
  });
}

void bmm_cpu(const Tensor& a, const Tensor& b, const Tensor& out) {
  if (out.numel() == 0) return;
  if (a.shape()[2] == 0) {  // empty sum: BLAS implementations differ on k = 0
    Tensor(out).fill_(0.0);
    return;
  }
#ifdef CVG_WITH_BLAS
  const bool done = dispatch_floating(a.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    return gemm_blas<T>(a, b, out);
  });
  if (done) return;
#endif
  gemm_fallback_cpu(a, b, out);
}

}  // namespace cvg
