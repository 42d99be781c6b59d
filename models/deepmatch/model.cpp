#include "models/deepmatch/model.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/autograd.h"
#include "core/error.h"
#include "kernels/binary.h"
#include "kernels/conv.h"
#include "kernels/deepmatch.h"
#include "kernels/reduce.h"
#include "kernels/shape.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "nn/conv_layers.h"

namespace cvg::deepmatch {

namespace {
// Descriptor norms below eps are shrunk rather than blown up to unit length (see the header).
constexpr double kHogEps = 0.1;
constexpr double kCnnEps = 1e-2;
}  // namespace

void DmGeometry::check_image(int64_t height, int64_t width, const std::string& what) const {
  const int64_t rows = grid_rows(height), cols = grid_cols(width);
  const int64_t side = std::min(rows, cols);
  const int64_t need = levels >= 2 ? (int64_t{1} << (levels - 2)) + 1 : 1;
  if (side >= need) return;
  CVG_CHECK(side >= 1, "deepmatch: ", what, " gives no reference point (the grid's first point ",
            "sits ", offset, " px in, then every ", stride, " px): the image is too small");
  int64_t most = 1;  // the largest L whose top level still has parents on this grid
  while ((int64_t{1} << (most - 1)) + 1 <= side) ++most;
  fail("deepmatch: ", what, " gives a grid of ", rows, " rows x ", cols,
       " columns of reference points; --levels ",
       levels, " needs more than ", need - 1, " per side (with fewer no point gets a match): use ",
       "--levels ", most, " or less, or a larger image");
}

int64_t DmGeometry::bytes_per_point() const {
  int64_t sum = 0;
  for (int64_t l = 0, r = radius; l <= levels; ++l, r = (r + 1) / 2) {
    const int64_t k2 = (2 * r + 1) * (2 * r + 1);
    // S_l, its pooled copy, the switches, Q_l and the disaggregated scores of the level.
    sum += k2 * (4 + 4 + 1 + 4 + 4);
  }
  return sum;
}

DescriptorKind parse_descriptor(const std::string& name) {
  if (name == "hog") return DescriptorKind::hog;
  if (name == "cnn") return DescriptorKind::cnn;
  fail("deepmatch: unknown descriptor '", name, "' (hog or cnn)");
}

const char* descriptor_name(DescriptorKind kind) { return kind == DescriptorKind::hog ? "hog" : "cnn"; }

Tensor normalise_descriptors(const Tensor& x, double eps) {
  CVG_CHECK(x.dim() == 4, "normalise_descriptors: expected N x C x H x W, got ", x.shape());
  return x * rsqrt(sum(x * x, {1}, /*keepdim=*/true) + eps * eps);
}

Tensor hog_features(const Tensor& gray) {
  CVG_CHECK(gray.dim() == 4 && gray.size(1) == 1, "hog_features: expected N x 1 x H x W images, got ",
            gray.shape());
  const TensorOptions opts = TensorOptions{}.with_dtype(gray.dtype()).with_device(gray.device());
  // Central differences projected on 8 directions u_b = (cos, sin)(2 pi b / 8): one 3 x 3 filter
  // per direction (the projection is linear, so it folds into the difference filter).
  std::vector<double> w(8 * 9, 0.0);
  for (int b = 0; b < 8; ++b) {
    const double a = 2.0 * std::numbers::pi * b / 8.0, c = std::cos(a), s = std::sin(a);
    w[b * 9 + 3] = -0.5 * c;  // (row 1, col 0)
    w[b * 9 + 5] = 0.5 * c;   // (row 1, col 2)
    w[b * 9 + 1] = -0.5 * s;  // (row 0, col 1)
    w[b * 9 + 7] = 0.5 * s;   // (row 2, col 1)
  }
  const int64_t h = gray.size(2), wd = gray.size(3);
  // Replicated borders: zero padding would invent an edge along the image border.
  const Tensor orient = relu(conv2d(pad(gray, {1, 1, 1, 1}, PadMode::replicate), tensor(w, {8, 1, 3, 3}, opts)));
  // 4 x 4 cell sums (depthwise ones); padded by 4 zeros so that box[y + 4 + dy, x + 4 + dx] is the
  // cell whose top-left pixel is (y + dy, x + dx).
  const Tensor box = conv2d(pad(orient, {4, 4, 4, 4}), ones({8, 1, 4, 4}, opts), Tensor(), {1, 1}, {0, 0},
                            {1, 1}, /*groups=*/8);
  TensorList cells;
  for (int64_t dy : {0, 4})
    for (int64_t dx : {0, 4}) cells.push_back(narrow(narrow(box, 2, dy, h), 3, dx, wd));
  return cat(cells, 1);
}

CnnDescriptor::CnnDescriptor() {
  nn::Conv2dOptions d2;
  d2.padding = {2, 2};
  d2.dilation = {2, 2};
  nn::Conv2dOptions same5;
  same5.padding = {2, 2};
  c1_ = register_module("conv1", std::make_shared<nn::Conv2d>(1, 16, 5, same5));
  c2_ = register_module("conv2", std::make_shared<nn::Conv2d>(16, 32, 3, d2));
  c3_ = register_module("conv3", std::make_shared<nn::Conv2d>(32, 32, 3, d2));
}

Tensor CnnDescriptor::forward(const Tensor& gray) {
  // Centred input; the last ReLU keeps the descriptor non-negative (S_0 in [0, 1]).
  const Tensor x = relu((*c1_)(gray - 0.5));
  return relu((*c3_)(relu((*c2_)(x))));
}

DeepMatchNet::DeepMatchNet(DescriptorKind kind, DmGeometry geometry, double nu_init)
    : kind_(kind), geo_(geometry) {
  CVG_CHECK(geo_.radius >= 1 && geo_.levels >= 1 && geo_.stride >= 1 && geo_.offset >= 0,
            "DeepMatchNet: bad geometry (radius ", geo_.radius, ", levels ", geo_.levels, ", stride ",
            geo_.stride, ", offset ", geo_.offset, ")");
  CVG_CHECK(nu_init > 0, "DeepMatchNet: nu must be > 0, got ", nu_init);
  nu = full({geo_.levels}, nu_init, TensorOptions{}.with_requires_grad(true));
  register_parameter("nu", &nu);
  if (kind_ == DescriptorKind::cnn) cnn_ = register_module("cnn", std::make_shared<CnnDescriptor>());
}

std::string DeepMatchNet::describe() const {
  return str_cat("DeepMatchNet (", descriptor_name(kind_), ", R0 ", geo_.radius, ", L ", geo_.levels,
                 ", stride ", geo_.stride, ")");
}

Tensor DeepMatchNet::descriptors(const Tensor& gray) {
  if (kind_ == DescriptorKind::hog) return normalise_descriptors(hog_features(gray), kHogEps);
  return normalise_descriptors((*cnn_)(gray), kCnnEps);
}

Tensor DeepMatchNet::q0_from_grid(const Tensor& ref, const Tensor& target, int64_t offset) const {
  TensorList nus;
  for (int64_t l = 0; l < geo_.levels; ++l) nus.push_back(select(nu, 0, l));
  return deep_matching(dm_correlation(ref, target, geo_.radius, geo_.stride, offset), nus);
}

Tensor DeepMatchNet::q0_from_descriptors(const Tensor& desc0, const Tensor& desc1) const {
  CVG_CHECK(desc0.dim() == 4 && desc1.dim() == 4 && desc0.size(0) == desc1.size(0) &&
                desc0.size(1) == desc1.size(1),
            "deepmatch: descriptor maps must be N x d x H x W with the same N and d, got ", desc0.shape(),
            " and ", desc1.shape());
  const Tensor ref = slice(slice(desc0, 2, geo_.offset, desc0.size(2), geo_.stride), 3, geo_.offset,
                           desc0.size(3), geo_.stride);
  return q0_from_grid(ref, desc1, geo_.offset);
}

Tensor DeepMatchNet::forward_pair(const Tensor& gray0, const Tensor& gray1) {
  return q0_from_descriptors(descriptors(gray0), descriptors(gray1));
}

Tensor DeepMatchNet::match_volume(const Tensor& desc0, const Tensor& desc1, int64_t max_bytes,
                                  int64_t rows_per_block) const {
  NoGradGuard no_grad;
  const int64_t rows = geo_.grid_rows(desc0.size(2)), cols = geo_.grid_cols(desc0.size(3));
  const int64_t halo = (int64_t{1} << geo_.levels) - 1;
  int64_t block = rows_per_block;
  if (block <= 0) {
    const int64_t row_bytes = cols * desc0.size(0) * geo_.bytes_per_point();
    const int64_t fit = max_bytes / std::max<int64_t>(row_bytes, 1);
    if (fit >= rows) return q0_from_descriptors(desc0, desc1);
    CVG_CHECK(fit > 2 * halo, "deepmatch: a memory budget of ", max_bytes >> 20, " MiB holds ", fit,
              " reference rows of ", row_bytes >> 10, " KiB, fewer than the ", 2 * halo + 1,
              " a block with its halo needs; raise --max-memory-mb or lower --radius");
    block = fit - 2 * halo;
  }
  if (block >= rows) return q0_from_descriptors(desc0, desc1);
  // The target map is cut to the rows a block can reach. dm_correlation has one offset for both
  // axes, so the cut is aligned by also padding R zero columns on the left: local coordinates
  // are (x + R, y - (stride lo - R)) and the reference offset becomes offset + R in both.
  const int64_t r = geo_.radius, local_offset = geo_.offset + r;
  TensorList parts;
  for (int64_t a = 0; a < rows; a += block) {
    const int64_t b = std::min(rows, a + block);
    const int64_t lo = std::max<int64_t>(0, a - halo), hi = std::min(rows, b + halo);
    const Tensor ref = slice(slice(desc0, 2, geo_.offset + geo_.stride * lo,
                                   std::min(desc0.size(2), geo_.offset + geo_.stride * (hi - 1) + 1), geo_.stride),
                             3, geo_.offset, desc0.size(3), geo_.stride);
    const int64_t y0 = geo_.stride * lo - r;  // global row of local row 0
    const int64_t need = geo_.stride * (hi - lo - 1) + local_offset + r + 1;
    // Rows outside the target score as zero descriptors do (dm_correlation's convention), so
    // a block whose rows all lie below a shorter target gets one zero row: no empty dim.
    const int64_t top = std::max<int64_t>(0, -y0);
    const int64_t first = std::clamp<int64_t>(y0, 0, desc1.size(2));
    const int64_t last = std::clamp<int64_t>(y0 + need, first, desc1.size(2));
    Tensor target = narrow(desc1, 2, first, last - first);
    target = pad(target, {r, 0, top, last > first ? 0 : 1});
    const Tensor q = q0_from_grid(ref, target, local_offset);
    parts.push_back(narrow(q, 1, a - lo, b - a).contiguous());
  }
  return cat(parts, 1);
}

std::vector<Tensor> DeepMatchNet::feature_parameters() const {
  return cnn_ ? cnn_->parameters() : std::vector<Tensor>{};
}

void DeepMatchNet::clamp_nu(double lo, double hi) {
  NoGradGuard no_grad;
  nu.copy_(clamp(nu, lo, hi));
}

Tensor gt_offsets(const Tensor& flow, const Tensor& valid, const DmGeometry& geo) {
  CVG_CHECK(flow.dim() == 4 && flow.size(1) == 2, "gt_offsets: flow must be N x 2 x H x W, got ", flow.shape());
  CVG_CHECK(valid.dim() == 3 && valid.size(0) == flow.size(0) && valid.size(1) == flow.size(2) &&
                valid.size(2) == flow.size(3),
            "gt_offsets: valid must be N x H x W matching flow ", flow.shape(), ", got ", valid.shape());
  const Tensor f = flow.to(kCPU).to(DType::float32).contiguous();
  const Tensor v = valid.to(kCPU).to(DType::uint8).contiguous();
  const int64_t n = f.size(0), h = f.size(2), w = f.size(3);
  const int64_t rows = geo.grid_rows(h), cols = geo.grid_cols(w), r = geo.radius;
  std::vector<int64_t> out(static_cast<size_t>(n * rows * cols * 2), -1);
  const float* fp = f.data<float>();
  const uint8_t* vp = v.data<uint8_t>();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t y = geo.offset + geo.stride * i, x = geo.offset + geo.stride * j;
        if (!vp[(b * h + y) * w + x]) continue;
        const double dx = fp[((b * 2 + 0) * h + y) * w + x], dy = fp[((b * 2 + 1) * h + y) * w + x];
        if (!std::isfinite(dx) || !std::isfinite(dy)) continue;
        const size_t o = static_cast<size_t>(((b * rows + i) * cols + j) * 2);
        out[o] = static_cast<int64_t>(std::lround(dy)) + r;
        out[o + 1] = static_cast<int64_t>(std::lround(dx)) + r;
      }
  return from_vector(out, {n, rows, cols, 2}, TensorOptions{}.with_dtype(DType::int64));
}

}  // namespace cvg::deepmatch
