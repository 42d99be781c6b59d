#pragma once
// The SGEMM versions, from the textbook loop to the production kernel, each a small step from
// the previous one (see kernels/sgemm_cuda.h for the list). All compute, for one batch entry
// selected by blockIdx.z,
//
//   C[M, N] = A[M, K] @ B[K, N]        row-major, dense: A(i, k) = A[i * K + k]
//
// with every access bounds-checked (out-of-range elements of a tile are loaded as 0 and never
// stored), so any M, N, K is correct. Batch entries are `sa`, `sb`, `sc` elements apart.
// Indices that can exceed 2^31 (i * K, k * N, batch offsets) are computed in 64 bits.
//
// Thread/data mapping of a 2-D block tile (v3-v5): the block computes a BM x BN tile of C, in
// steps of BK along K; each of its (BM/8) x (BN/8) threads owns 8 x 8 outputs.
#include <cuda_runtime.h>

#include <cstdint>

namespace cvg::sgemm {

// Moves the three matrix pointers to the batch entry of this block.
template <typename T>
__device__ __forceinline__ void select_batch(const T*& A, const T*& B, T*& C, int64_t sa,
                                             int64_t sb, int64_t sc) {
  const int64_t z = blockIdx.z;
  A += z * sa;
  B += z * sb;
  C += z * sc;
}

// ---- v1: naive -- one thread per C element, K-loop straight from global memory. ------------
// Consecutive threads (threadIdx.x) take consecutive columns, so reads of B and writes of C are
// coalesced; each A element is re-read by all N threads of its row (served by the caches).
__global__ void sgemm_v1_naive(int M, int N, int K, const float* A, int64_t sa, const float* B,
                               int64_t sb, float* C, int64_t sc) {
  select_batch(A, B, C, sa, sb, sc);
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  const int row = blockIdx.y * blockDim.y + threadIdx.y;
  if (row >= M || col >= N) return;
  const float* a = A + static_cast<int64_t>(row) * K;
  float acc = 0.f;
  for (int k = 0; k < K; ++k) acc += a[k] * B[static_cast<int64_t>(k) * N + col];
  C[static_cast<int64_t>(row) * N + col] = acc;
}

// ---- v2: shared-memory tiling -- each TxT tile of A and B is read from global memory once
// per block and then T times from shared memory. Templated on the element type: the float64
// path of bmm_cuda uses it too (T = 16 there, to stay within the shared-memory budget). ------
// Bs[k][tx] is read by a warp along tx (consecutive banks); As[ty][k] is the same address for
// the whole warp (a broadcast).
template <typename F, int T>
__global__ void __launch_bounds__(T* T)
    gemm_v2_smem(int M, int N, int K, const F* A, int64_t sa, const F* B, int64_t sb, F* C,
                 int64_t sc) {
  __shared__ F As[T][T];
  __shared__ F Bs[T][T];
  select_batch(A, B, C, sa, sb, sc);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * T + ty;
  const int col = blockIdx.x * T + tx;
  F acc = 0;
  for (int k0 = 0; k0 < K; k0 += T) {
    As[ty][tx] = (row < M && k0 + tx < K) ? A[static_cast<int64_t>(row) * K + k0 + tx] : F(0);
    Bs[ty][tx] = (k0 + ty < K && col < N) ? B[static_cast<int64_t>(k0 + ty) * N + col] : F(0);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < T; ++k) acc += As[ty][k] * Bs[k][tx];
    __syncthreads();  // the tiles are overwritten by the next iteration
  }
  if (row < M && col < N) C[static_cast<int64_t>(row) * N + col] = acc;
}

// ---- v3: 2-D register tiling -- a 128x128 block tile, each of 256 threads accumulates an 8x8
// micro-tile in registers: per k it loads 8 values of A and 8 of B from shared memory and does
// 64 FMAs (v2 does 1 FMA per 2 shared loads). --------------------------------------------------
// Thread (tx, ty) owns rows ty*8 .. ty*8+7 and columns tx*8 .. tx*8+7 of the block tile.
constexpr int V3_BM = 128, V3_BN = 128, V3_BK = 8, V3_TM = 8, V3_TN = 8;
constexpr int V3_THREADS = (V3_BM / V3_TM) * (V3_BN / V3_TN);

__global__ void __launch_bounds__(V3_THREADS)
    sgemm_v3_regtile(int M, int N, int K, const float* A, int64_t sa, const float* B, int64_t sb,
                     float* C, int64_t sc) {
  __shared__ float As[V3_BM][V3_BK];
  __shared__ float Bs[V3_BK][V3_BN];
  select_batch(A, B, C, sa, sb, sc);
  const int tid = threadIdx.x;
  const int tx = tid % (V3_BN / V3_TN), ty = tid / (V3_BN / V3_TN);
  const int row0 = blockIdx.y * V3_BM, col0 = blockIdx.x * V3_BN;

  float acc[V3_TM][V3_TN] = {};
  float ra[V3_TM], rb[V3_TN];
  for (int k0 = 0; k0 < K; k0 += V3_BK) {
    for (int i = tid; i < V3_BM * V3_BK; i += V3_THREADS) {
      const int r = i / V3_BK, c = i % V3_BK;
      const int gr = row0 + r, gc = k0 + c;
      As[r][c] = (gr < M && gc < K) ? A[static_cast<int64_t>(gr) * K + gc] : 0.f;
    }
    for (int i = tid; i < V3_BK * V3_BN; i += V3_THREADS) {
      const int r = i / V3_BN, c = i % V3_BN;
      const int gr = k0 + r, gc = col0 + c;
      Bs[r][c] = (gr < K && gc < N) ? B[static_cast<int64_t>(gr) * N + gc] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < V3_BK; ++k) {
#pragma unroll
      for (int i = 0; i < V3_TM; ++i) ra[i] = As[ty * V3_TM + i][k];
#pragma unroll
      for (int j = 0; j < V3_TN; ++j) rb[j] = Bs[k][tx * V3_TN + j];
#pragma unroll
      for (int i = 0; i < V3_TM; ++i)
#pragma unroll
        for (int j = 0; j < V3_TN; ++j) acc[i][j] += ra[i] * rb[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < V3_TM; ++i) {
    const int r = row0 + ty * V3_TM + i;
    if (r >= M) continue;
#pragma unroll
    for (int j = 0; j < V3_TN; ++j) {
      const int c = col0 + tx * V3_TN + j;
      if (c < N) C[static_cast<int64_t>(r) * N + c] = acc[i][j];
    }
  }
}

// ---- v4/v5 building blocks ---------------------------------------------------------------
// Block tile BM x BN x 8 with (BM/8) x (BN/8) threads, each owning 8 x 8 outputs split into
// four 4 x 4 quadrants: rows {ty*4 .. +3, BM/2 + ty*4 .. +3} x columns {tx*4 .. +3,
// BN/2 + tx*4 .. +3}. With that split, the 8 threads of a quarter-warp that read a float4 of
// one shared-memory row read 128 contiguous bytes: no bank conflicts (an 8-wide contiguous
// micro-tile, as in v3, makes them 32 bytes apart: 2-way conflicts).
//
// Shared memory: As is stored transposed, As[k][m], so the 4 A values a thread needs for one k
// are a float4 too. Its rows are padded by 4 floats: the transposing store then hits 32
// distinct banks (row stride BM + 4 floats puts rows 4 apart 16 banks apart), and rows stay
// 16-byte aligned.
//
// Global loads: each thread loads whole float4s of the A tile (rows of 8 k's = 2 float4s) and
// of the B tile. VEC = true issues them as float4 loads, which needs K % 4 == 0, N % 4 == 0
// and 16-byte aligned pointers (the host checks); then a float4 is either entirely inside the
// matrix or entirely outside. VEC = false loads the same 4 elements one by one with a bounds
// check each, for any shape.
constexpr int BK = 8;
constexpr int PAD = 4;

template <int BM, int BN>
struct TileShape {
  static constexpr int threads = (BM / 8) * (BN / 8);
  static constexpr int a_loads = BM * BK / 4 / threads;  // float4s of A per thread
  static constexpr int b_loads = BK * BN / 4 / threads;  // float4s of B per thread
  static_assert(a_loads >= 1 && a_loads * 4 * threads == BM * BK, "A tile must split evenly");
  static_assert(b_loads >= 1 && b_loads * 4 * threads == BK * BN, "B tile must split evenly");
};

// Registers holding one thread's share of the next A and B tiles.
template <int BM, int BN>
struct TileRegs {
  float4 a[TileShape<BM, BN>::a_loads];
  float4 b[TileShape<BM, BN>::b_loads];
};

template <bool VEC>
__device__ __forceinline__ float4 load4(const float* base, int64_t row_start, int col, int ncols,
                                        bool row_ok) {
  if constexpr (VEC) {
    if (!row_ok || col >= ncols) return make_float4(0.f, 0.f, 0.f, 0.f);
    return *reinterpret_cast<const float4*>(base + row_start + col);
  } else {
    float v[4];
#pragma unroll
    for (int q = 0; q < 4; ++q)
      v[q] = (row_ok && col + q < ncols) ? base[row_start + col + q] : 0.f;
    return make_float4(v[0], v[1], v[2], v[3]);
  }
}

// Global -> registers: the A tile rows row0 .. row0+BM-1, columns k0 .. k0+7, and the B tile
// rows k0 .. k0+7, columns col0 .. col0+BN-1.
template <int BM, int BN, bool VEC>
__device__ __forceinline__ void load_tiles(TileRegs<BM, BN>& r, const float* A, const float* B,
                                           int M, int N, int K, int row0, int col0, int k0) {
  using S = TileShape<BM, BN>;
#pragma unroll
  for (int l = 0; l < S::a_loads; ++l) {
    const int f = threadIdx.x + l * S::threads;  // float4 index in the tile, 2 per row
    const int gr = row0 + f / 2;
    r.a[l] = load4<VEC>(A, static_cast<int64_t>(gr) * K, k0 + (f % 2) * 4, K, gr < M);
  }
#pragma unroll
  for (int l = 0; l < S::b_loads; ++l) {
    const int f = threadIdx.x + l * S::threads;  // BN/4 float4s per row
    const int gr = k0 + f / (BN / 4);
    r.b[l] = load4<VEC>(B, static_cast<int64_t>(gr) * N, col0 + (f % (BN / 4)) * 4, N, gr < K);
  }
}

// Registers -> shared memory (A transposed).
template <int BM, int BN>
__device__ __forceinline__ void store_tiles(const TileRegs<BM, BN>& r, float (*As)[BM + PAD],
                                            float (*Bs)[BN]) {
  using S = TileShape<BM, BN>;
#pragma unroll
  for (int l = 0; l < S::a_loads; ++l) {
    const int f = threadIdx.x + l * S::threads;
    const int m = f / 2, k = (f % 2) * 4;
    As[k + 0][m] = r.a[l].x;
    As[k + 1][m] = r.a[l].y;
    As[k + 2][m] = r.a[l].z;
    As[k + 3][m] = r.a[l].w;
  }
#pragma unroll
  for (int l = 0; l < S::b_loads; ++l) {
    const int f = threadIdx.x + l * S::threads;
    *reinterpret_cast<float4*>(&Bs[f / (BN / 4)][(f % (BN / 4)) * 4]) = r.b[l];
  }
}

// acc += the 8x8 quadrant-split micro-tile product over the BK k's in shared memory.
template <int BM, int BN>
__device__ __forceinline__ void mma_tile(const float (*As)[BM + PAD], const float (*Bs)[BN],
                                         int tx, int ty, float (&acc)[8][8]) {
#pragma unroll
  for (int k = 0; k < BK; ++k) {
    const float4 a0 = *reinterpret_cast<const float4*>(&As[k][ty * 4]);
    const float4 a1 = *reinterpret_cast<const float4*>(&As[k][BM / 2 + ty * 4]);
    const float4 b0 = *reinterpret_cast<const float4*>(&Bs[k][tx * 4]);
    const float4 b1 = *reinterpret_cast<const float4*>(&Bs[k][BN / 2 + tx * 4]);
    const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
    const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] += a[i] * b[j];
  }
}

// acc -> C. Micro-tile row i is block row (i < 4 ? ty*4 + i : BM/2 + ty*4 + i-4); columns
// likewise. With VEC (N % 4 == 0, C aligned) each 4-column group is one float4 store.
template <int BM, int BN, bool VEC>
__device__ __forceinline__ void store_c(float* C, int M, int N, int row0, int col0, int tx,
                                        int ty, const float (&acc)[8][8]) {
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int r = row0 + (i < 4 ? ty * 4 + i : BM / 2 + ty * 4 + (i - 4));
    if (r >= M) continue;
    float* crow = C + static_cast<int64_t>(r) * N;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int c = col0 + h * (BN / 2) + tx * 4;
      const float* v = &acc[i][h * 4];
      if constexpr (VEC) {
        if (c < N) *reinterpret_cast<float4*>(crow + c) = make_float4(v[0], v[1], v[2], v[3]);
      } else {
#pragma unroll
        for (int q = 0; q < 4; ++q)
          if (c + q < N) crow[c + q] = v[q];
      }
    }
  }
}

// ---- v4: v3 + float4 loads, transposed A tile, conflict-free split micro-tile. -------------
template <int BM, int BN, bool VEC>
__global__ void __launch_bounds__(TileShape<BM, BN>::threads)
    sgemm_v4_vec(int M, int N, int K, const float* A, int64_t sa, const float* B, int64_t sb,
                 float* C, int64_t sc) {
  __shared__ __align__(16) float As[BK][BM + PAD];
  __shared__ __align__(16) float Bs[BK][BN];
  select_batch(A, B, C, sa, sb, sc);
  const int tx = threadIdx.x % (BN / 8), ty = threadIdx.x / (BN / 8);
  const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
  float acc[8][8] = {};
  TileRegs<BM, BN> regs;
  for (int k0 = 0; k0 < K; k0 += BK) {
    load_tiles<BM, BN, VEC>(regs, A, B, M, N, K, row0, col0, k0);
    store_tiles<BM, BN>(regs, As, Bs);
    __syncthreads();
    mma_tile<BM, BN>(As, Bs, tx, ty, acc);
    __syncthreads();
  }
  store_c<BM, BN, VEC>(C, M, N, row0, col0, tx, ty, acc);
}

// ---- v5: v4 + double buffering -- while the block multiplies the tiles in one shared buffer,
// each thread's global loads of the next tiles are already in flight (into registers), and
// are stored into the other buffer afterwards; one __syncthreads per K step instead of two. ---
// Why it is race-free: in step s the block reads buffer s%2 and writes buffer (s+1)%2. The last
// reads of (s+1)%2 happened in step s-1, which ended with __syncthreads; the writes of s%2
// happened in step s-1 before that same barrier.
template <int BM, int BN, bool VEC>
__global__ void __launch_bounds__(TileShape<BM, BN>::threads)
    sgemm_v5_dbuf(int M, int N, int K, const float* A, int64_t sa, const float* B, int64_t sb,
                  float* C, int64_t sc) {
  __shared__ __align__(16) float As[2][BK][BM + PAD];
  __shared__ __align__(16) float Bs[2][BK][BN];
  select_batch(A, B, C, sa, sb, sc);
  const int tx = threadIdx.x % (BN / 8), ty = threadIdx.x / (BN / 8);
  const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
  float acc[8][8] = {};
  TileRegs<BM, BN> regs;
  if (K > 0) {
    load_tiles<BM, BN, VEC>(regs, A, B, M, N, K, row0, col0, 0);
    store_tiles<BM, BN>(regs, As[0], Bs[0]);
    __syncthreads();
  }
  for (int k0 = 0, s = 0; k0 < K; k0 += BK, s ^= 1) {
    const bool has_next = k0 + BK < K;
    if (has_next) load_tiles<BM, BN, VEC>(regs, A, B, M, N, K, row0, col0, k0 + BK);
    mma_tile<BM, BN>(As[s], Bs[s], tx, ty, acc);
    if (has_next) store_tiles<BM, BN>(regs, As[s ^ 1], Bs[s ^ 1]);
    __syncthreads();
  }
  store_c<BM, BN, VEC>(C, M, N, row0, col0, tx, ty, acc);
}

}  // namespace cvg::sgemm
