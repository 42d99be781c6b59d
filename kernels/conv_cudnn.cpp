// The choice of the CUDA convolution backend (handwritten kernels or cuDNN), and the cuDNN
// backend itself: the baseline that kernels/conv_cuda.cu's handwritten kernels are measured
// against (conventions in kernels/conv.h).
//
// The choice is compiled in every build (the CPU tests check the parsing of CVG_CONV and
// CVG_CONV_VERSION); the cuDNN part only in builds that found cuDNN (CVG_WITH_CUDNN, set by
// third_party/cudnn.cmake). This file is host code: cuDNN's API is called from C++, and its
// kernels run on the default stream, like every cvgrad kernel, so no synchronisation is needed.
//
// cuDNN path, per call: descriptors for the geometry (NCHW, groups, dilation, cross-correlation),
// the fastest of cuDNN's timed trials (cudnnFind*Algorithm: CVG_CONV=cudnn-find, the default;
// heuristics in deterministic mode) or with CVG_CONV=cudnn the algorithm cuDNN's heuristics rank
// first for the shape (cudnnGet*Algorithm_v7), skipping the non-deterministic ones in deterministic
// mode, chosen once per shape and cached with its workspace size, a workspace from the caching
// allocator, then cudnnConvolutionForward (+ cudnnAddTensor for the bias), BackwardData or
// BackwardFilter. float32 runs with FMA math (no TF32: a like-for-like baseline for the FP32
// handwritten kernels, as PyTorch does with allow_tf32 off); float64 with cuDNN's double kernels.
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "kernels/conv.h"

#ifdef CVG_WITH_CUDNN
#include <cudnn.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "core/cuda_check.h"
#include "core/determinism.h"
#endif

namespace cvg {

// ---- the choice --------------------------------------------------------------------------------

namespace {

// The handwritten version CVG_CONV=cvgrad (or no cuDNN in the build) means.
constexpr int kConvDefaultVersion = 2;
constexpr int kNoOverride = -1;
// The backend of the innermost live ConvBackendGuard, or kNoOverride.
std::atomic<int> backend_override{kNoOverride};

bool is_set(const char* v) { return v != nullptr && v[0] != '\0'; }

// "1 (v1 direct), 2 (v2 implicit GEMM, ...)" for error messages.
std::string valid_versions() {
  std::string s;
  for (int v = 1; v <= kConvCudaVersions; ++v)
    s += str_cat(v > 1 ? ", " : "", v, " (", conv_cuda_version_name(v), ")");
  return s;
}

void check_backend(const char* what, int backend) {
  CVG_CHECK(!is_cudnn_backend(backend) || conv_cudnn_built(), "conv2d: ", what,
            " but cvgrad was built without cuDNN (install cuDNN and reconfigure; CMake's "
            "summary says whether it was found)");
  CVG_CHECK(is_cudnn_backend(backend) || (backend >= 1 && backend <= kConvCudaVersions),
            "conv2d: no CUDA backend ", backend, "; valid: ", kConvCudnn, " (cuDNN), ",
            kConvCudnnFind, " (cuDNN, timed search), ", valid_versions());
}

}  // namespace

bool conv_cudnn_built() {
#ifdef CVG_WITH_CUDNN
  return true;
#else
  return false;
#endif
}

int parse_conv_backend(const char* conv, const char* version) {
  const bool find = is_set(conv) && std::strcmp(conv, "cudnn-find") == 0;
  const bool cudnn = find || (is_set(conv) && std::strcmp(conv, "cudnn") == 0);
  CVG_CHECK(!is_set(conv) || cudnn || std::strcmp(conv, "cvgrad") == 0,
            "conv2d: CVG_CONV must be 'cvgrad' (the handwritten kernels), 'cudnn' (cuDNN, "
            "heuristic algorithms) or 'cudnn-find' (cuDNN, algorithms timed per shape: the "
            "default in builds with cuDNN), got '", conv, "'");
  if (cudnn) {
    check_backend(str_cat("CVG_CONV=", conv).c_str(), find ? kConvCudnnFind : kConvCudnn);
    CVG_CHECK(!is_set(version), "conv2d: CVG_CONV_VERSION='", version,
              "' picks a handwritten kernel but CVG_CONV=", conv, "; unset one of them");
    return find ? kConvCudnnFind : kConvCudnn;
  }
  // Neither variable set: cuDNN with timed algorithms where the build has it (the fastest
  // backend on the apps' shapes: the landmarks step 7.4 ms, 10.6 with the heuristics, 24.4 with
  // v2 on the H100, bench/results; deterministic mode falls back to the heuristics), else the
  // handwritten default. Either one set: handwritten.
  if (!is_set(version))
    return !is_set(conv) && conv_cudnn_built() ? kConvCudnnFind : kConvDefaultVersion;
  // Whole-string decimal only: "2x" or " 2" are as wrong as "7".
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(version, &end, 10);
  const bool digits = version[0] >= '0' && version[0] <= '9';  // strtol skips blanks, signs
  CVG_CHECK(digits && errno == 0 && *end == '\0' && n >= 1 && n <= kConvCudaVersions,
            "conv2d: CVG_CONV_VERSION must be one of ", valid_versions(), ", got '", version,
            "'");
  return static_cast<int>(n);
}

int conv_cuda_version() {
  const int o = backend_override.load();
  if (o != kNoOverride) return o;
  static const int from_env =
      parse_conv_backend(std::getenv("CVG_CONV"), std::getenv("CVG_CONV_VERSION"));
  return from_env;
}

const char* conv_cuda_version_name(int backend) {
  switch (backend) {
    case kConvCudnn: return "cudnn (heuristic algorithm, FP32 FMA math)";
    case kConvCudnnFind: return "cudnn-find (fastest algorithm timed per shape, FP32 FMA math)";
    case 1: return "v1 direct";
    case 2: return "v2 implicit GEMM, split-K weight gradient";
    case 3: return "v3 implicit GEMM, tiles up to 128 x 128";
    default: return "unknown";
  }
}

ConvBackendGuard::ConvBackendGuard(int backend) {
  check_backend("the cuDNN backend was selected", backend);
  previous_ = backend_override.exchange(backend);
}

ConvBackendGuard::~ConvBackendGuard() { backend_override.store(previous_); }

// ---- cuDNN -------------------------------------------------------------------------------------

#ifdef CVG_WITH_CUDNN

namespace {

[[noreturn]] void cudnn_fail(cudnnStatus_t status, const char* op, const char* call,
                             const char* file, int line) {
  // cuDNN 9 keeps a message saying which argument it rejected; it is worth more than the code.
  char detail[1024] = "";
#if CUDNN_MAJOR >= 9
  cudnnGetLastErrorString(detail, sizeof detail);
#endif
  fail(op, " (cuDNN): ", call, " failed: ", cudnnGetErrorString(status),
       detail[0] != '\0' ? str_cat(" (", detail, ")") : std::string(), " at ", file, ":", line);
}

#define CVG_CUDNN_CHECK(expr, op)                                          \
  do {                                                                     \
    const cudnnStatus_t cvg_cudnn_st_ = (expr);                            \
    if (cvg_cudnn_st_ != CUDNN_STATUS_SUCCESS)                             \
      cudnn_fail(cvg_cudnn_st_, (op), #expr, __FILE__, __LINE__);          \
  } while (0)

const char* pass_op(ConvPass pass) {
  switch (pass) {
    case ConvPass::forward: return "conv2d";
    case ConvPass::backward_input: return "conv2d_backward_input";
    case ConvPass::backward_weight: return "conv2d_backward_weight";
  }
  return "conv2d";
}

// One handle per device, created on first use and kept for the life of the process (like the
// cuBLAS handles of kernels/matmul_cuda.cu: destroying them at exit races with the CUDA
// runtime's teardown). A new handle runs on the default stream, which every cvgrad kernel uses.
cudnnHandle_t cudnn_handle(const char* op) {
  constexpr int kMaxDevices = 64;
  static std::mutex mutex;
  static cudnnHandle_t handles[kMaxDevices] = {};
  int dev = 0;
  CVG_CUDA_CHECK(cudaGetDevice(&dev), op);
  CVG_CHECK(dev >= 0 && dev < kMaxDevices, op, " (cuDNN): device index ", dev, " out of range");
  const std::lock_guard<std::mutex> lock(mutex);
  if (!handles[dev]) CVG_CUDNN_CHECK(cudnnCreate(&handles[dev]), op);
  return handles[dev];
}

// Descriptors, destroyed with their owner (also when a later call of the setup throws).
template <typename D>
using Owned = std::unique_ptr<std::remove_pointer_t<D>, cudnnStatus_t (*)(D)>;

int as_int(const char* op, int64_t v) {
  CVG_CHECK(v <= INT_MAX, op, " (cuDNN): size ", v, " does not fit cuDNN's int arguments");
  return static_cast<int>(v);
}

Owned<cudnnTensorDescriptor_t> tensor_desc(const char* op, cudnnDataType_t dt, int64_t n,
                                           int64_t c, int64_t h, int64_t w) {
  // cuDNN's legacy API addresses each tensor with 32-bit offsets.
  CVG_CHECK(n * c * h * w <= INT_MAX, op, " (cuDNN): a tensor of ", n, " x ", c, " x ", h,
            " x ", w, " elements exceeds cuDNN's limit of 2^31 - 1 elements");
  cudnnTensorDescriptor_t d = nullptr;
  CVG_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d), op);
  Owned<cudnnTensorDescriptor_t> owned(d, cudnnDestroyTensorDescriptor);
  CVG_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, dt, as_int(op, n),
                                             as_int(op, c), as_int(op, h), as_int(op, w)),
                  op);
  return owned;
}

// x, y and w of the forward convolution whose geometry is g (g.ho, g.wo: its full output),
// and the convolution itself.
struct Descriptors {
  Owned<cudnnTensorDescriptor_t> x{nullptr, cudnnDestroyTensorDescriptor};
  Owned<cudnnTensorDescriptor_t> y{nullptr, cudnnDestroyTensorDescriptor};
  Owned<cudnnFilterDescriptor_t> w{nullptr, cudnnDestroyFilterDescriptor};
  Owned<cudnnConvolutionDescriptor_t> conv{nullptr, cudnnDestroyConvolutionDescriptor};

  Descriptors(const char* op, const ConvGeometry& g, cudnnDataType_t dt) {
    x = tensor_desc(op, dt, g.n, g.cin, g.h, g.w);
    y = tensor_desc(op, dt, g.n, g.cout, g.ho, g.wo);
    cudnnFilterDescriptor_t fd = nullptr;
    CVG_CUDNN_CHECK(cudnnCreateFilterDescriptor(&fd), op);
    w.reset(fd);
    CVG_CUDNN_CHECK(cudnnSetFilter4dDescriptor(fd, dt, CUDNN_TENSOR_NCHW, as_int(op, g.cout),
                                               as_int(op, g.cin_g()), as_int(op, g.kh),
                                               as_int(op, g.kw)),
                    op);
    cudnnConvolutionDescriptor_t cd = nullptr;
    CVG_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&cd), op);
    conv.reset(cd);
    // PyTorch's convolution is cuDNN's cross-correlation (no kernel flip); the compute type is
    // the data type (float32 sums in float32, as the handwritten kernels do).
    CVG_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(cd, as_int(op, g.ph), as_int(op, g.pw),
                                                    as_int(op, g.sh), as_int(op, g.sw),
                                                    as_int(op, g.dh), as_int(op, g.dw),
                                                    CUDNN_CROSS_CORRELATION, dt),
                    op);
    CVG_CUDNN_CHECK(cudnnSetConvolutionGroupCount(cd, as_int(op, g.groups)), op);
    // FMA math keeps float32 in float32 (the default allows TF32 on Ampere and later).
    CVG_CUDNN_CHECK(cudnnSetConvolutionMathType(
                        cd, dt == CUDNN_DATA_FLOAT ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH),
                    op);
  }
};

struct Algo {
  int algo;          // a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  size_t workspace;  // bytes
};

// The first algorithm of cuDNN's ranking that can run this shape, was not ranked with tensor-core
// math (each perf record carries its math type; skipping those keeps float32 in FMA math whatever
// a search returns), and, in deterministic mode, is deterministic (cuDNN's backward-filter
// algorithms 0 and 3 add with atomics).
template <typename Perf>
decltype(Perf::algo) first_usable(const char* op, const std::vector<Perf>& perf, int count) {
  const bool deterministic = deterministic_algorithms();
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].mathType != CUDNN_TENSOR_OP_MATH &&
        perf[i].mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
        (!deterministic || perf[i].determinism == CUDNN_DETERMINISTIC))
      return perf[i].algo;
  fail(op, " (cuDNN): cuDNN's heuristics offer no algorithm for this shape",
       deterministic ? " in deterministic mode" : "", " (", count, " candidates)");
}

// pass's algorithm and its workspace size: the first usable one of cuDNN's ranking, which is
// the heuristics' (search = false) or that of timed trials of every algorithm (search = true:
// cudnnFind*, which allocates its own buffers, synchronises and takes milliseconds).
Algo choose_algo(const char* op, ConvPass pass, cudnnHandle_t h, const Descriptors& d,
                 bool search) {
  Algo a{0, 0};
  int max = 0, got = 0;
  switch (pass) {
    case ConvPass::forward: {
      CVG_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max), op);
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(max);
      if (search)
        CVG_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(h, d.x.get(), d.w.get(),
                                                             d.conv.get(), d.y.get(), max, &got,
                                                             perf.data()),
                        op);
      else
        CVG_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.get(), d.w.get(),
                                                               d.conv.get(), d.y.get(), max,
                                                               &got, perf.data()),
                        op);
      const cudnnConvolutionFwdAlgo_t algo = first_usable(op, perf, got);
      CVG_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x.get(), d.w.get(),
                                                              d.conv.get(), d.y.get(), algo,
                                                              &a.workspace),
                      op);
      a.algo = algo;
      return a;
    }
    case ConvPass::backward_input: {
      CVG_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max), op);
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(max);
      if (search)
        CVG_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(h, d.w.get(), d.y.get(),
                                                                  d.conv.get(), d.x.get(), max,
                                                                  &got, perf.data()),
                        op);
      else
        CVG_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.get(), d.y.get(),
                                                                    d.conv.get(), d.x.get(),
                                                                    max, &got, perf.data()),
                        op);
      const cudnnConvolutionBwdDataAlgo_t algo = first_usable(op, perf, got);
      CVG_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w.get(), d.y.get(),
                                                                   d.conv.get(), d.x.get(), algo,
                                                                   &a.workspace),
                      op);
      a.algo = algo;
      return a;
    }
    case ConvPass::backward_weight: {
      CVG_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max), op);
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(max);
      if (search)
        CVG_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(h, d.x.get(), d.y.get(),
                                                                    d.conv.get(), d.w.get(), max,
                                                                    &got, perf.data()),
                        op);
      else
        CVG_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.get(), d.y.get(),
                                                                      d.conv.get(), d.w.get(),
                                                                      max, &got, perf.data()),
                        op);
      const cudnnConvolutionBwdFilterAlgo_t algo = first_usable(op, perf, got);
      CVG_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x.get(), d.y.get(),
                                                                     d.conv.get(), d.w.get(),
                                                                     algo, &a.workspace),
                      op);
      a.algo = algo;
      return a;
    }
  }
  return a;
}

// The algorithm for a shape, chosen on the shape's first call (the heuristics cost tens of
// microseconds, as much as a small convolution; a search, milliseconds) and remembered per
// device, pass, dtype, deterministic mode and way of choosing. Deterministic mode never
// searches: timings vary from run to run, and with them the choice and its rounding.
Algo cached_algo(const char* op, ConvPass pass, cudnnHandle_t h, const Descriptors& d,
                 const ConvGeometry& g, DType dtype, bool search) {
  using Key = std::array<int64_t, 21>;
  static std::mutex mutex;
  static std::map<Key, Algo> cache;
  int dev = 0;
  CVG_CUDA_CHECK(cudaGetDevice(&dev), op);
  const bool deterministic = deterministic_algorithms();
  search = search && !deterministic;
  const Key key{dev,  static_cast<int64_t>(pass), static_cast<int64_t>(dtype),
                deterministic, search,
                g.n,  g.cin, g.h, g.w, g.cout, g.ho, g.wo, g.kh, g.kw,
                g.sh, g.sw,  g.ph, g.pw, g.dh, g.dw, g.groups};
  const std::lock_guard<std::mutex> lock(mutex);
  const auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const Algo a = choose_algo(op, pass, h, d, search);
  cache.emplace(key, a);
  return a;
}

// The first rows x cols of each plane of a contiguous N x C x H x W tensor, as a view.
Tensor window(const Tensor& t, int64_t rows, int64_t cols) {
  const Shape& s = t.shape();
  return make_view(t, {s[0], s[1], rows, cols}, t.strides(), t.offset());
}

// cuDNN's kernels run asynchronously, like ours: with CVG_CUDA_SYNC=1 (core/cuda_check.h) wait
// for them, so that an error inside one is reported by the op that queued it.
void sync_if_debugging(const char* op) {
  if (cuda_sync_after_launch()) CVG_CUDA_CHECK(cudaDeviceSynchronize(), op);
}

}  // namespace

void conv2d_cudnn(ConvPass pass, const Tensor& a, const Tensor& b, const Tensor& bias,
                  const ConvGeometry& g, const Tensor& out, bool search) {
  const char* op = pass_op(pass);
  CVG_CHECK(a.dtype() == DType::float32 || a.dtype() == DType::float64, op,
            " (cuDNN): float32 and float64 only, got ", dtype_name(a.dtype()));
  const cudnnDataType_t dt = a.dtype() == DType::float32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
  if (out.numel() == 0) return;
  Tensor dst = out;  // a handle to write through (out is a const reference to one)
  // A sum over nothing (no images, or no input channels per group): only the bias remains.
  if (a.numel() == 0 || b.numel() == 0) {
    dst.zero_();
    if (pass == ConvPass::forward && bias.defined())
      dst.copy_(make_view(bias, out.shape(), {0, 1, 0, 0}, bias.offset()));
    return;
  }
  // cuDNN wants the full output of the geometry; conv_transpose2d's output_padding can make
  // g.ho, g.wo smaller (conv.h). Then the forward computes the full output and keeps its first
  // rows and columns, and the backward passes read grad_out padded with zeros, which add
  // nothing to the sums.
  ConvGeometry full = g;
  full.ho = conv_out_size(g.h, g.kh, g.sh, g.ph, g.dh);
  full.wo = conv_out_size(g.w, g.kw, g.sw, g.pw, g.dw);
  const bool truncated = full.ho != g.ho || full.wo != g.wo;
  Tensor gout = a;
  if (truncated && pass != ConvPass::forward) {
    gout = zeros({g.n, g.cout, full.ho, full.wo}, a.options());
    window(gout, g.ho, g.wo).copy_(a);
  }

  const cudnnHandle_t h = cudnn_handle(op);
  const Descriptors d(op, full, dt);
  const Algo algo = cached_algo(op, pass, h, d, full, a.dtype(), search);
  // The workspace (like the temporaries above) goes back to the allocator when this returns,
  // possibly before cuDNN's kernels have run: safe, because memory it hands out again is used
  // by later work on the same default stream (and with caching off, cudaFree waits for the GPU).
  Tensor workspace;
  if (algo.workspace > 0)
    workspace = Tensor::empty({static_cast<int64_t>(algo.workspace)},
                              TensorOptions{}.with_dtype(DType::uint8).with_device(a.device()));
  void* ws = workspace.defined() ? workspace.raw_data() : nullptr;
  // alpha = 1, beta = 0 (overwrite), in the precision of the data (cuDNN's rule).
  const float one_f = 1.f, zero_f = 0.f;
  const double one_d = 1.0, zero_d = 0.0;
  const void* one = dt == CUDNN_DATA_FLOAT ? static_cast<const void*>(&one_f) : &one_d;
  const void* zero = dt == CUDNN_DATA_FLOAT ? static_cast<const void*>(&zero_f) : &zero_d;

  switch (pass) {
    case ConvPass::forward: {
      const Tensor y = truncated ? Tensor::empty({g.n, g.cout, full.ho, full.wo}, out.options())
                                 : out;
      CVG_CUDNN_CHECK(cudnnConvolutionForward(h, one, d.x.get(), a.raw_data(), d.w.get(),
                                              b.raw_data(), d.conv.get(),
                                              static_cast<cudnnConvolutionFwdAlgo_t>(algo.algo),
                                              ws, algo.workspace, zero, d.y.get(), y.raw_data()),
                      op);
      if (bias.defined()) {
        const auto bd = tensor_desc(op, dt, 1, g.cout, 1, 1);
        CVG_CUDNN_CHECK(cudnnAddTensor(h, one, bd.get(), bias.raw_data(), one, d.y.get(),
                                       y.raw_data()),
                        op);
      }
      if (truncated) dst.copy_(window(y, g.ho, g.wo));
      break;
    }
    case ConvPass::backward_input:
      CVG_CUDNN_CHECK(
          cudnnConvolutionBackwardData(h, one, d.w.get(), b.raw_data(), d.y.get(),
                                       gout.raw_data(), d.conv.get(),
                                       static_cast<cudnnConvolutionBwdDataAlgo_t>(algo.algo), ws,
                                       algo.workspace, zero, d.x.get(), out.raw_data()),
          op);
      break;
    case ConvPass::backward_weight:
      CVG_CUDNN_CHECK(
          cudnnConvolutionBackwardFilter(h, one, d.x.get(), b.raw_data(), d.y.get(),
                                         gout.raw_data(), d.conv.get(),
                                         static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo.algo),
                                         ws, algo.workspace, zero, d.w.get(), out.raw_data()),
          op);
      break;
  }
  sync_if_debugging(op);
}

#elif defined(CVG_WITH_CUDA)

void conv2d_cudnn(ConvPass, const Tensor&, const Tensor&, const Tensor&, const ConvGeometry&,
                  const Tensor&, bool) {
  check_backend("the cuDNN backend was selected", kConvCudnn);
}

#endif

}  // namespace cvg
