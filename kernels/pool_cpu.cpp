// CPU loops for the pooling ops. Each loop runs over the elements it writes (outputs for the
// forward passes, inputs for the gathers of the backward passes), splits them across threads
// with parallel_for and calls the per-element math of kernels/pool_math.h, the code the CUDA
// kernels run. Every element has one writer, so results do not depend on the thread count.
#include <algorithm>
#include <atomic>

#include "core/parallel.h"
#include "kernels/pool.h"

namespace cvg {

namespace {

// Elements per chunk: a window costs a few to a few dozen loads.
constexpr int64_t kGrain = 4096;

}  // namespace

void max_pool2d_cpu(const Tensor& x, const PoolGeometry& g, const Tensor& values,
                    const Tensor& switches) {
  dispatch_floating(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* pv = values.data<T>();
    int32_t* ps = switches.data<int32_t>();
    const int64_t ow_n = g.w.out, oh_n = g.h.out, ip = g.in_plane();
    // Whole output rows per index: the plane and the row cost two divisions per row instead of
    // per output (with 2 x 2 windows those divisions cost as much as the four loads).
    parallel_for(g.planes * oh_n, std::max<int64_t>(1, kGrain / std::max<int64_t>(ow_n, 1)),
                 [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* plane = px + (r / oh_n) * ip;
        const int64_t oh = r % oh_n;
        for (int64_t ow = 0; ow < ow_n; ++ow)
          max_pool_at(plane, g, oh, ow, pv + r * ow_n + ow, ps + r * ow_n + ow);
      }
    });
  });
}

// The CPU runs the gather of max_pool_grad_at as a scatter per plane: zero the plane, then add
// each output's gradient at its switch, in increasing output order. Every input receives the
// same additions in the same order as in the gather (so the bits match the CUDA kernel's), but
// the work is one visit per output instead of a covering-window search per input, which costs
// several integer divisions per input element. A switch outside its output's window adds
// nothing, as in the gather. Planes are independent, so threads split them.
void max_pool2d_backward_cpu(const Tensor& grad_out, const Tensor& switches,
                             const PoolGeometry& g, const Tensor& grad_in) {
  dispatch_floating(grad_out.dtype(), "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = grad_out.data<T>();
    const int32_t* ps = switches.data<int32_t>();
    T* pi = grad_in.data<T>();
    const int64_t iw_n = g.w.in, ow_n = g.w.out, oh_n = g.h.out, op = g.out_plane(),
                  ip = g.in_plane();
    // The modulo runs only for dilated (step > 1) windows: one division per output, not three.
    auto inside = [](const PoolTaps& t, int64_t i) {
      return i >= t.begin && i < t.end && (t.step == 1 || (i - t.begin) % t.step == 0);
    };
    parallel_for(g.planes, std::max<int64_t>(1, kGrain / std::max<int64_t>(ip, 1)),
                 [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) {
        T* gi = pi + plane * ip;
        const T* go = pg + plane * op;
        const int32_t* sw = ps + plane * op;
        std::fill(gi, gi + ip, T(0));
        for (int64_t oh = 0; oh < oh_n; ++oh) {
          const PoolTaps th = pool_taps(g.h, oh, g.adaptive);
          for (int64_t ow = 0; ow < ow_n; ++ow) {
            const int64_t o = oh * ow_n + ow, idx = sw[o];
            if (idx < 0 || idx >= ip) continue;
            const int64_t ih = idx / iw_n;
            if (inside(th, ih) && inside(pool_taps(g.w, ow, g.adaptive), idx - ih * iw_n))
              gi[idx] += go[o];
          }
        }
      }
    });
  });
}

void avg_pool2d_cpu(const Tensor& x, const PoolGeometry& g, const Tensor& out) {
  dispatch_floating(x.dtype(), "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const int64_t ow_n = g.w.out, op = g.out_plane(), ip = g.in_plane();
    parallel_for(g.planes * op, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t l = b; l < e; ++l) {
        const int64_t plane = l / op, o = l % op;
        po[l] = avg_pool_at(px + plane * ip, g, o / ow_n, o % ow_n);
      }
    });
  });
}

void avg_pool2d_backward_cpu(const Tensor& grad_out, const PoolGeometry& g,
                             const Tensor& grad_in) {
  dispatch_floating(grad_out.dtype(), "avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = grad_out.data<T>();
    T* pi = grad_in.data<T>();
    const int64_t iw_n = g.w.in, op = g.out_plane(), ip = g.in_plane();
    parallel_for(g.planes * ip, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t l = b; l < e; ++l) {
        const int64_t plane = l / ip, i = l % ip;
        pi[l] = avg_pool_grad_at(pg + plane * op, g, i / iw_n, i % iw_n);
      }
    });
  });
}

int64_t max_unpool2d_winners_cpu(const Tensor& switches, const UnpoolGeometry& g,
                                 const Tensor& winners) {
  const int32_t* ps = switches.data<int32_t>();
  int32_t* pw = winners.data<int32_t>();
  // The smallest bad position over all planes; a minimum does not depend on which thread
  // finds which candidate.
  std::atomic<int64_t> first_bad{-1};
  auto note_bad = [&](int64_t pos) {
    int64_t cur = first_bad.load();
    while ((cur < 0 || pos < cur) && !first_bad.compare_exchange_weak(cur, pos)) {
    }
  };
  // Whole planes per chunk: a plane's writes must run in increasing input order so that the
  // last writer wins, and no other plane touches its outputs.
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(g.in_plane, 1));
  parallel_for(g.planes, grain, [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      int32_t* w = pw + plane * g.out_plane;
      const int32_t* s = ps + plane * g.in_plane;
      std::fill(w, w + g.out_plane, -1);
      for (int64_t k = 0; k < g.in_plane; ++k) {
        const int64_t p = s[k];
        if (p < 0 || p >= g.out_plane) {
          note_bad(plane * g.in_plane + k);
          break;
        }
        w[p] = static_cast<int32_t>(k);
      }
    }
  });
  return first_bad.load();
}

void max_unpool2d_cpu(const Tensor& x, const Tensor& winners, const UnpoolGeometry& g,
                      const Tensor& out) {
  dispatch_floating(x.dtype(), "max_unpool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const int32_t* pw = winners.data<int32_t>();
    T* po = out.data<T>();
    parallel_for(g.planes * g.out_plane, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t l = b; l < e; ++l) {
        const int64_t plane = l / g.out_plane;
        po[l] = unpool_value_at(px + plane * g.in_plane, pw + plane * g.out_plane,
                                l % g.out_plane);
      }
    });
  });
}

void max_unpool2d_backward_cpu(const Tensor& grad_out, const Tensor& switches,
                               const Tensor& winners, const UnpoolGeometry& g,
                               const Tensor& grad_in) {
  dispatch_floating(grad_out.dtype(), "max_unpool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = grad_out.data<T>();
    const int32_t* ps = switches.data<int32_t>();
    const int32_t* pw = winners.data<int32_t>();
    T* pi = grad_in.data<T>();
    parallel_for(g.planes * g.in_plane, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t l = b; l < e; ++l) {
        const int64_t plane = l / g.in_plane;
        pi[l] = unpool_grad_at(pg + plane * g.out_plane, ps + plane * g.in_plane,
                               pw + plane * g.out_plane, l % g.in_plane);
      }
    });
  });
}

}  // namespace cvg
