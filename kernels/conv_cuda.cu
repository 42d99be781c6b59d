// CUDA kernels of the convolutions (conventions in kernels/conv.h, index math in conv_math.h),
// two versions side by side (llm.c dev/cuda style):
//   v1  direct: one thread per result element, looping over its sum (conv_*_at); the weight
//       gradient's threads each walk all N x Ho x Wo positions.
//   v2  implicit GEMM: v1 + the pass computed as a tiled GEMM whose operands are gathered from
//       the tensors while they are loaded (no im2col buffer): 64 x 64 tiles of the result per
//       block, 64 x 16 / 16 x 64 operand tiles staged in shared memory, a 4 x 4 register tile
//       per thread, depth walked with carry-only digit cursors (no divisions per element), and
//       for the weight gradient (a long N Ho Wo reduction into a small result) a split of the
//       reduction across blocks whose partial sums a second kernel adds in split order:
//       deterministic, no atomics.
//   v3  v2 with larger tiles where the problem is large enough (float32): 128 rows and / or 128
//       columns per block and so an 8 x 8, 8 x 4 or 4 x 8 register tile per thread, which halves
//       the shared-memory reads and the operand-gathering index arithmetic per multiply-add
//       (the H100 run measured v2 at 8-13 TFLOP/s, 21-90 % of cuDNN). A pass keeps 64 x 64 tiles
//       when the larger ones would leave the GPU with too few blocks; float64 runs v2's kernel.
//       Measured on an H100 (bench/results/NVIDIA_H100_80GB_HBM3/2026-11-22_2-bench): slower
//       than v2 on every layer, 1.0-1.6x its time. At up to 213 registers per thread one
//       256-thread block fits per SM, and with single-buffered shared-memory tiles that is too
//       little parallelism to hide the gathers' latency: the next version
//       needs fewer registers (32-bit index arithmetic) or asynchronous copies, not bigger tiles.
// Every kernel is a template on the element type (float32 and float64). conv2d_cuda also hands
// the cuDNN backend to kernels/conv_cudnn.cpp, which holds the run-time choice of backend.

#include <type_traits>

#include "core/cuda_launch.cuh"
#include "kernels/conv.h"

namespace cvg {

namespace {

// ---- v1: direct ------------------------------------------------------------------------------

template <typename T>
__global__ void conv_forward_direct_kernel(const T* x, const T* w, const T* bias, ConvGeometry g,
                                           int64_t total, T* out) {
  CVG_GRID_STRIDE(i, total) {
    const int64_t p = g.out_plane();
    out[i] = conv_forward_at(x, w, bias, g, i / (g.cout * p), (i / p) % g.cout, (i % p) / g.wo,
                             i % g.wo);
  }
}

template <typename T>
__global__ void conv_backward_input_direct_kernel(const T* gout, const T* w, ConvGeometry g,
                                                  int64_t total, T* gin) {
  CVG_GRID_STRIDE(i, total) {
    const int64_t p = g.in_plane();
    gin[i] = conv_backward_input_at(gout, w, g, i / (g.cin * p), (i / p) % g.cin,
                                    (i % p) / g.w, i % g.w);
  }
}

template <typename T>
__global__ void conv_backward_weight_direct_kernel(const T* gout, const T* x, ConvGeometry g,
                                                   int64_t total, T* gw) {
  CVG_GRID_STRIDE(i, total) {
    gw[i] = conv_backward_weight_at(gout, x, g, i / g.k_g(), (i / g.taps()) % g.cin_g(),
                                    (i % g.taps()) / g.kw, i % g.kw);
  }
}

template <typename T>
void run_direct(ConvPass pass, const T* a, const T* b, const T* bias, const ConvGeometry& g,
                int64_t total, T* out) {
  const int blocks = grid_blocks(total);
  switch (pass) {
    case ConvPass::forward:
      conv_forward_direct_kernel<T><<<blocks, kBlockThreads>>>(a, b, bias, g, total, out);
      CVG_CUDA_CHECK_LAUNCH("conv2d");
      return;
    case ConvPass::backward_input:
      conv_backward_input_direct_kernel<T><<<blocks, kBlockThreads>>>(a, b, g, total, out);
      CVG_CUDA_CHECK_LAUNCH("conv2d_backward_input");
      return;
    case ConvPass::backward_weight:
      conv_backward_weight_direct_kernel<T><<<blocks, kBlockThreads>>>(a, b, g, total, out);
      CVG_CUDA_CHECK_LAUNCH("conv2d_backward_weight");
      return;
  }
}

// ---- v2 / v3: implicit GEMM ---------------------------------------------------------------

constexpr int kTileK = kConvTileK;
constexpr int kGemmThreads = 256;  // 16 x 16; thread (ty, tx) owns rows ty + 16 i, columns tx + 16 j
constexpr int kThreadsPerSide = 16;
constexpr int kARowStep = kGemmThreads / kTileK;  // A-tile rows one round of loads covers
// Enough blocks to fill a large GPU several times over when splitting the weight gradient.
constexpr int64_t kTargetBlocks = 1024;
// v3 takes a larger tile only if the pass still has this many blocks (2 per SM of an H100).
constexpr int64_t kFillBlocks = 264;

// A BM x BN result tile per block (v2: 64 x 64).
template <int BM, int BN>
struct ConvTile {
  static constexpr int kMI = BM / kThreadsPerSide, kNJ = BN / kThreadsPerSide;  // register tile
  static constexpr int kALoads = BM / kARowStep;  // A elements each thread stages per depth tile
  static constexpr int kBRowStep = kGemmThreads / BN;  // B-tile depth rows one round covers
  static constexpr int kBLoads = kTileK / kBRowStep;   // B elements each thread stages
  static_assert(BM % kThreadsPerSide == 0 && BN % kThreadsPerSide == 0);
  static_assert(BM % kARowStep == 0 && kGemmThreads % BN == 0 && kTileK % kBRowStep == 0);
};

// C tile (blockIdx.y, blockIdx.x) of group blockIdx.z % groups, summing the depth range of split
// blockIdx.z / groups. partial == null: the result (plus the forward bias) goes to gm.c;
// otherwise to partial[split * result_numel + index] for the split-reduction kernel.
template <typename T, ConvPass P, int BM, int BN>
__global__ void __launch_bounds__(kGemmThreads)
    conv_igemm_kernel(ConvGemm<T, P> gm, int64_t k_chunk, int64_t result_numel, T* partial) {
  using Tile = ConvTile<BM, BN>;
  // A tile stored k-major (As[k][m]) so the inner loop reads a row of m; +1 breaks the bank
  // conflicts of the transposing stores.
  __shared__ T As[kTileK][BM + 1];
  __shared__ T Bs[kTileK][BN];
  const int tid = threadIdx.x, tx = tid % kThreadsPerSide, ty = tid / kThreadsPerSide;
  const int64_t rows = gm.rows(), cols = gm.cols(), depth = gm.depth();
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * BM;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int64_t grp = blockIdx.z % gm.g.groups, split = blockIdx.z / gm.g.groups;
  const int64_t k_begin = split * k_chunk;
  const int64_t k_end = k_begin + k_chunk < depth ? k_begin + k_chunk : depth;

  // A loads: this thread owns depth offset ak and rows am0 + kARowStep i of the BM x kTileK
  // tile (consecutive threads read consecutive k). B loads: column bj (consecutive threads read
  // consecutive columns, i.e. neighbouring pixels) and depth offsets bk0 + kBRowStep i.
  const int ak = tid % kTileK, am0 = tid / kTileK;
  const int bj = tid % BN, bk0 = tid / BN;
  const int64_t bcol = col0 + bj;
  const bool bcol_ok = bcol < cols;
  const ConvCol bc = bcol_ok ? gm.decode_col(bcol) : ConvCol{};
  // Depth cursors, advanced by kTileK per tile (only decoded inside the depth range).
  ConvDepth ka{}, kb[Tile::kBLoads];
  if (k_begin + ak < k_end) ka = gm.decode_depth(k_begin + ak);
#pragma unroll
  for (int i = 0; i < Tile::kBLoads; ++i)
    if (k_begin + bk0 + Tile::kBRowStep * i < k_end)
      kb[i] = gm.decode_depth(k_begin + bk0 + Tile::kBRowStep * i);

  T acc[Tile::kMI][Tile::kNJ];
#pragma unroll
  for (int i = 0; i < Tile::kMI; ++i)
#pragma unroll
    for (int j = 0; j < Tile::kNJ; ++j) acc[i][j] = T(0);

  for (int64_t k0 = k_begin; k0 < k_end; k0 += kTileK) {
    const bool a_ok = k0 + ak < k_end;
#pragma unroll
    for (int i = 0; i < Tile::kALoads; ++i) {
      const int am = am0 + kARowStep * i;
      const int64_t m = row0 + am;
      As[ak][am] = (a_ok && m < rows) ? gm.load_a(grp, m, ka) : T(0);
    }
#pragma unroll
    for (int i = 0; i < Tile::kBLoads; ++i) {
      const int bk = bk0 + Tile::kBRowStep * i;
      Bs[bk][bj] = (bcol_ok && k0 + bk < k_end) ? gm.load_b(grp, kb[i], bc) : T(0);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      T av[Tile::kMI], bv[Tile::kNJ];
#pragma unroll
      for (int i = 0; i < Tile::kMI; ++i) av[i] = As[kk][ty + kThreadsPerSide * i];
#pragma unroll
      for (int j = 0; j < Tile::kNJ; ++j) bv[j] = Bs[kk][tx + kThreadsPerSide * j];
#pragma unroll
      for (int i = 0; i < Tile::kMI; ++i)
#pragma unroll
        for (int j = 0; j < Tile::kNJ; ++j) acc[i][j] += av[i] * bv[j];
    }
    __syncthreads();
    gm.advance(ka, kTileK);
#pragma unroll
    for (int i = 0; i < Tile::kBLoads; ++i) gm.advance(kb[i], kTileK);
  }

  // Thread (ty, tx) holds rows ty + 16 i and columns tx + 16 j: neighbouring threads store
  // neighbouring columns.
#pragma unroll
  for (int j = 0; j < Tile::kNJ; ++j) {
    const int64_t col = col0 + tx + kThreadsPerSide * j;
    if (col >= cols) continue;
    const ConvCol cc = gm.decode_col(col);
#pragma unroll
    for (int i = 0; i < Tile::kMI; ++i) {
      const int64_t m = row0 + ty + kThreadsPerSide * i;
      if (m >= rows) continue;
      const int64_t idx = gm.c_index(grp, m, cc);
      if (partial)
        partial[split * result_numel + idx] = acc[i][j];
      else
        gm.c[idx] = gm.c_init(grp, m) + acc[i][j];
    }
  }
}

// out[i] = sum over s in increasing order of partial[s * n + i].
template <typename T>
__global__ void conv_sum_splits_kernel(const T* partial, int64_t splits, int64_t n, T* out) {
  CVG_GRID_STRIDE(i, n) {
    T acc = T(0);
    for (int64_t s = 0; s < splits; ++s) acc += partial[s * n + i];
    out[i] = acc;
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename T, ConvPass P, int BM, int BN>
void run_igemm(const char* op, const ConvGemm<T, P>& gm, const Tensor& out) {
  const ConvGeometry& g = gm.g;
  const int64_t tiles_n = ceil_div(gm.cols(), BN), tiles_m = ceil_div(gm.rows(), BM);
  const int64_t depth = gm.depth();
  CVG_CHECK(tiles_m <= 65535, op, ": ", gm.rows(), " GEMM rows per group exceed the CUDA grid");
  CVG_CHECK(tiles_n <= 0x7fffffff, op, ": ", gm.cols(), " GEMM columns exceed the CUDA grid");
  // Split the depth only for the weight gradient, whose result is small and whose depth is
  // N Ho Wo; each split keeps at least four tiles of depth.
  int64_t splits = 1;
  if (P == ConvPass::backward_weight) {
    const int64_t blocks = tiles_n * tiles_m * g.groups;
    splits = std::max<int64_t>(1, std::min(ceil_div(kTargetBlocks, blocks),
                                           ceil_div(depth, 4 * kTileK)));
    splits = std::min<int64_t>(splits, 65535 / g.groups);
  }
  CVG_CHECK(g.groups * splits <= 65535, op, ": groups ", g.groups, " exceed the CUDA grid");
  const int64_t k_chunk = std::max<int64_t>(kTileK, ceil_div(ceil_div(depth, splits), kTileK) * kTileK);
  splits = std::max<int64_t>(1, ceil_div(depth, k_chunk));
  const dim3 grid(static_cast<unsigned>(tiles_n), static_cast<unsigned>(tiles_m),
                  static_cast<unsigned>(g.groups * splits));
  if (splits == 1) {
    conv_igemm_kernel<T, P, BM, BN><<<grid, kGemmThreads>>>(gm, k_chunk, out.numel(), nullptr);
    CVG_CUDA_CHECK_LAUNCH(op);
    return;
  }
  const Tensor partial = Tensor::empty({splits, out.numel()}, out.options());
  T* pp = static_cast<T*>(partial.raw_data());
  conv_igemm_kernel<T, P, BM, BN><<<grid, kGemmThreads>>>(gm, k_chunk, out.numel(), pp);
  CVG_CUDA_CHECK_LAUNCH(op);
  conv_sum_splits_kernel<T><<<grid_blocks(out.numel()), kBlockThreads>>>(
      pp, splits, out.numel(), static_cast<T*>(out.raw_data()));
  CVG_CUDA_CHECK_LAUNCH(op);
}

// v3's choice of tile for one pass (see the header comment).
template <typename T, ConvPass P>
void run_v3_tiles(const char* op, const ConvGemm<T, P>& gm, const Tensor& out) {
  if constexpr (!std::is_same_v<T, float>) {
    return run_igemm<T, P, 64, 64>(op, gm, out);
  } else {
    const int64_t rows = gm.rows(), cols = gm.cols(), groups = gm.g.groups;
    // The weight gradient fills the GPU by splitting its depth; the other passes only by tiles.
    const auto fills = [&](int bm, int bn) {
      return P == ConvPass::backward_weight ||
             ceil_div(rows, bm) * ceil_div(cols, bn) * groups >= kFillBlocks;
    };
    const bool tall = rows > 64, wide = cols > 64;
    if (tall && wide && fills(128, 128)) return run_igemm<T, P, 128, 128>(op, gm, out);
    if (wide && fills(64, 128)) return run_igemm<T, P, 64, 128>(op, gm, out);
    if (tall && fills(128, 64)) return run_igemm<T, P, 128, 64>(op, gm, out);
    return run_igemm<T, P, 64, 64>(op, gm, out);
  }
}

// The implicit GEMM of a pass with v2's 64 x 64 tiles (large = false) or v3's choice.
template <typename T, ConvPass P>
void run_gemm_pass(bool large, const char* op, const ConvGemm<T, P>& gm, const Tensor& out) {
  if (large)
    run_v3_tiles(op, gm, out);
  else
    run_igemm<T, P, 64, 64>(op, gm, out);
}

template <typename T>
void run_implicit_gemm(bool large, ConvPass pass, const T* a, const T* b, const T* bias,
                       const ConvGeometry& g, const Tensor& out) {
  T* c = static_cast<T*>(out.raw_data());
  switch (pass) {
    case ConvPass::forward:
      return run_gemm_pass(large, "conv2d", ConvGemm<T, ConvPass::forward>{g, a, b, bias, c}, out);
    case ConvPass::backward_input:
      return run_gemm_pass(large, "conv2d_backward_input",
                           ConvGemm<T, ConvPass::backward_input>{g, a, b, nullptr, c}, out);
    case ConvPass::backward_weight:
      return run_gemm_pass(large, "conv2d_backward_weight",
                           ConvGemm<T, ConvPass::backward_weight>{g, a, b, nullptr, c}, out);
  }
}

}  // namespace

void conv2d_cuda(int version, ConvPass pass, const Tensor& a, const Tensor& b, const Tensor& bias,
                 const ConvGeometry& g, const Tensor& out) {
  if (is_cudnn_backend(version))
    return conv2d_cudnn(pass, a, b, bias, g, out, version == kConvCudnnFind);
  CVG_CHECK(version >= 1 && version <= kConvCudaVersions, "conv2d: no CUDA backend ", version,
            " (", kConvCudnn, " cuDNN, ", kConvCudnnFind, " cuDNN timed, 1 .. ",
            kConvCudaVersions, " handwritten)");
  dispatch_floating(a.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = static_cast<const T*>(a.raw_data());
    const T* pb = static_cast<const T*>(b.raw_data());
    const T* pbias = bias.defined() ? static_cast<const T*>(bias.raw_data()) : nullptr;
    if (version == 1)
      run_direct<T>(pass, pa, pb, pbias, g, out.numel(), static_cast<T*>(out.raw_data()));
    else
      run_implicit_gemm<T>(version == 3, pass, pa, pb, pbias, g, out);
  });
}

}  // namespace cvg
