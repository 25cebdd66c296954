// Whole-sequence LIF / LSNN kernels and max pooling, loaded with ctypes by
// spikeexp/functional/fused/build.py.
//
// Every arithmetic operation is written in the order of the reference step functions
// (spikeexp/functional/neurons/lif.py, lsnn.py) and the file is compiled with
// -ffp-contract=off (no fused multiply-add), so a forward pass rounds exactly like the
// step-by-step PyTorch loop. Parameters arrive as per-neuron arrays that repeat every `period`
// neurons (the state size, or the size of one sample when they are the same for every sample):
// neuron k reads entry k % period, so a tile of neurons [k0, k1) that never crosses a multiple
// of `period` reads entries k - shift with shift = k0 - k0 % period. The surrogate derivative
// of the feed-forward LIF backward is either computed inline (the algebraic surrogates of
// surrogate_derivative below, in the same operation order as spikeexp/functional/surrogate.py,
// hence bit-identical) or computed in PyTorch and passed in (all others, and the recurrent
// kernels). The exported functions at the end split the neurons [k0, k1) (feed-forward), the
// batch rows [r0, r1) (recurrent) or the planes (pooling) across OpenMP threads.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

constexpr int64_t kBlock = 256;  // neurons per tile: the state of a tile stays in L1

// Feed-forward LIF over `steps` steps of `m` neurons (z, u, j: [steps, m], row-major; input
// row t at x + t * x_stride: x_stride m, or 0 for the same input at every step). v, i hold the
// initial state on entry and the final state on exit. u receives the pre-reset voltage
// (optional: not needed without gradients), j (optional) the synaptic current after the input
// (needed for gradients of the rate constants). Parameters of neuron k: entry k - shift.
template <typename T>
void lif_forward(int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift,
                 const T* __restrict__ x, int64_t x_stride,
                 T* __restrict__ z, T* __restrict__ u, T* __restrict__ j_out, T* __restrict__ v,
                 T* __restrict__ i, const T* __restrict__ a, const T* __restrict__ b,
                 const T* __restrict__ vl, const T* __restrict__ vth,
                 const T* __restrict__ vr) {
  for (int64_t start = k0; start < k1; start += kBlock) {
    const int64_t end = start + kBlock < k1 ? start + kBlock : k1;
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t row = t * m;
      for (int64_t k = start; k < end; ++k) {
        const int64_t q = k - shift;
        const T j = i[k] + x[t * x_stride + k];
        const T uu = v[k] + a[q] * ((vl[q] - v[k]) + j);
        i[k] = j - b[q] * j;
        const bool s = uu - vth[q] > T(0);
        z[row + k] = s ? T(1) : T(0);
        if (u) u[row + k] = uu;
        if (j_out) j_out[row + k] = j;
        v[k] = s ? vr[q] : uu;
      }
    }
  }
}

// Surrogate derivatives computed inside the LIF backward: SG names the formula (the codes of
// INLINE_SURROGATES in spikeexp/functional/fused/lif.py). Each is written in the operation order
// of its PyTorch definition (x / y as reciprocal(y) * x where PyTorch divides a number by a
// tensor), so both round identically.
constexpr int kGiven = 0;  // g holds the derivative on entry (computed in PyTorch)
constexpr int kSuper = 1;
constexpr int kFastSigmoid = 2;
constexpr int kTriangle = 3;
constexpr int kStraightThrough = 4;

template <int SG, typename T>
inline T surrogate_derivative(T x, T alpha, T given) {
  const T ax = alpha * (x < T(0) ? -x : x);
  if (SG == kSuper) {
    const T s = ax + T(1);
    return T(1) / (s * s);  // 1 / (alpha |x| + 1)^2
  }
  if (SG == kFastSigmoid) {
    const T s = T(1) + ax;
    return (T(1) / (T(2) * (s * s))) * alpha;  // alpha / (2 (1 + alpha |x|)^2)
  }
  if (SG == kTriangle) {
    const T c = T(1) - ax;
    return alpha * (c > T(0) ? c : T(0));  // alpha max(0, 1 - alpha |x|)
  }
  if (SG == kStraightThrough) return T(1);
  return given;
}

// Backward of lif_forward (reset not detached). With SG == kGiven, g holds the surrogate
// derivative at u - v_th on entry; otherwise it is computed here (g's entry is not read). g
// holds the input gradient on exit. gz: gradient of the spikes (optional), row t at
// gz + t * gz_stride (stride 0: the same gradient at every step, e.g. a loss on spike counts).
// gv, gi: gradient of the final state on entry, of the initial state on exit. With PARAMS the
// parameter gradients ga ... gvr are accumulated per neuron (needs j and v0). One call handles
// one time step of one tile so that every inner loop has a single access pattern (vectorised).
// Parameters of neuron k: entry k - shift; with PARAMS shift is 0 (one period: all neurons).
template <typename T, bool PARAMS, bool GZ, int SG>
inline void lif_backward_step(int64_t start, int64_t end, int64_t shift, T alpha,
                              const T* __restrict__ ut,
                              const T* __restrict__ uprev, T* __restrict__ gt,
                              const T* __restrict__ gzt, T* __restrict__ gv, T* __restrict__ gi,
                              const T* __restrict__ jt, const T* __restrict__ a,
                              const T* __restrict__ b, const T* __restrict__ vl,
                              const T* __restrict__ vth, const T* __restrict__ vr,
                              T* __restrict__ ga, T* __restrict__ gb, T* __restrict__ gvl,
                              T* __restrict__ gvth, T* __restrict__ gvr, bool first) {
  for (int64_t k = start; k < end; ++k) {
    const int64_t q = k - shift;
    const T uu = ut[k];
    const T distance = uu - vth[q];
    const bool s = distance > T(0);
    const T gvk = gv[k];
    const T gik = gi[k];
    const T gzk = (GZ ? gzt[k] : T(0)) + gvk * (vr[q] - uu);
    const T gd = gzk * surrogate_derivative<SG>(distance, alpha, SG == kGiven ? gt[k] : T(0));
    const T du = (s ? T(0) : gvk) + gd;
    const T dj = (gik - b[q] * gik) + a[q] * du;
    gt[k] = dj;
    if (PARAMS) {
      // uprev: pre-reset voltage of the previous step, or the initial voltage (first step).
      const T up = uprev[k];
      const T vprev = !first && up - vth[q] > T(0) ? vr[q] : up;
      const T jj = jt[k];
      ga[k] += du * ((vl[q] - vprev) + jj);
      gb[k] -= gik * jj;
      gvl[k] += a[q] * du;
      gvth[k] -= gd;
      gvr[k] += s ? gvk : T(0);
    }
    gv[k] = du - a[q] * du;
    gi[k] = dj;
  }
}

template <typename T, bool PARAMS, bool GZ, int SG>
void lif_backward_tiles(int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift,
                        T alpha, const T* u, T* g,
                        const T* gz, int64_t gz_stride, T* gv, T* gi, const T* v0, const T* j,
                        const T* a, const T* b, const T* vl, const T* vth, const T* vr, T* ga,
                        T* gb, T* gvl, T* gvth, T* gvr) {
  for (int64_t start = k0; start < k1; start += kBlock) {
    const int64_t end = start + kBlock < k1 ? start + kBlock : k1;
    for (int64_t t = steps - 1; t >= 0; --t) {
      const int64_t row = t * m;
      lif_backward_step<T, PARAMS, GZ, SG>(
          start, end, shift, alpha, u + row, t > 0 ? u + row - m : v0, g + row,
          gz + t * gz_stride, gv, gi, PARAMS ? j + row : j, a, b, vl, vth, vr, ga, gb, gvl, gvth,
          gvr, t == 0);
    }
  }
}

template <typename T, int SG>
void lif_backward_sg(int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift, T alpha,
                     const T* u, T* g, const T* gz, int64_t gz_stride, T* gv, T* gi, const T* v0,
                     const T* j, const T* a, const T* b, const T* vl, const T* vth, const T* vr,
                     T* ga, T* gb, T* gvl, T* gvth, T* gvr) {
  const bool params = ga != nullptr;
  if (params && gz)
    lif_backward_tiles<T, true, true, SG>(steps, m, k0, k1, shift, alpha, u, g, gz, gz_stride, gv,
                                          gi, v0, j, a, b, vl, vth, vr, ga, gb, gvl, gvth, gvr);
  if (params && !gz)
    lif_backward_tiles<T, true, false, SG>(steps, m, k0, k1, shift, alpha, u, g, gz, gz_stride, gv,
                                           gi, v0, j, a, b, vl, vth, vr, ga, gb, gvl, gvth, gvr);
  if (!params && gz)
    lif_backward_tiles<T, false, true, SG>(steps, m, k0, k1, shift, alpha, u, g, gz, gz_stride, gv,
                                           gi, v0, j, a, b, vl, vth, vr, ga, gb, gvl, gvth, gvr);
  if (!params && !gz)
    lif_backward_tiles<T, false, false, SG>(steps, m, k0, k1, shift, alpha, u, g, gz, gz_stride,
                                            gv, gi, v0, j, a, b, vl, vth, vr, ga, gb, gvl, gvth,
                                            gvr);
}

template <typename T>
void lif_backward(int surrogate, int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift,
                  T alpha, const T* u, T* g, const T* gz, int64_t gz_stride, T* gv, T* gi,
                  const T* v0, const T* j, const T* a, const T* b, const T* vl, const T* vth,
                  const T* vr, T* ga, T* gb, T* gvl, T* gvth, T* gvr) {
#define SPIKEEXP_LIF_BACKWARD(SG)                                                             \
  lif_backward_sg<T, SG>(steps, m, k0, k1, shift, alpha, u, g, gz, gz_stride, gv, gi, v0, j, a, \
                         b, vl, vth, vr, ga, gb, gvl, gvth, gvr)
  switch (surrogate) {
    case kSuper: SPIKEEXP_LIF_BACKWARD(kSuper); break;
    case kFastSigmoid: SPIKEEXP_LIF_BACKWARD(kFastSigmoid); break;
    case kTriangle: SPIKEEXP_LIF_BACKWARD(kTriangle); break;
    case kStraightThrough: SPIKEEXP_LIF_BACKWARD(kStraightThrough); break;
    default: SPIKEEXP_LIF_BACKWARD(kGiven); break;
  }
#undef SPIKEEXP_LIF_BACKWARD
}

// Recurrent LIF (MODE 0) or LSNN (MODE 1: "norse", MODE 2: "bellec") layer of h neurons over
// batch rows [r0, r1). p: projected input [steps, batch, h]; wt: recurrent weights transposed,
// wt[k * h + n] = W[n, k]; z0: spikes before the first step. Writes spikes z and the threshold
// distance d ([steps, batch, h]); v, i, adapt: state [batch, h], initial on entry, final on exit.
// Per step: the recurrent input of every row (skipping silent neurons), then one vectorisable
// pass over the rows' contiguous [rows * h] block.
template <typename T, int MODE>
void recurrent_forward(int64_t steps, int64_t batch, int64_t h, int64_t r0, int64_t r1,
                       const T* __restrict__ p, const T* __restrict__ wt,
                       const T* __restrict__ z0, T* __restrict__ z, T* __restrict__ d,
                       T* __restrict__ v, T* __restrict__ i, T* __restrict__ adapt,
                       const T* __restrict__ a, const T* __restrict__ bs,
                       const T* __restrict__ c, const T* __restrict__ vl,
                       const T* __restrict__ vth, const T* __restrict__ vr,
                       const T* __restrict__ beta) {
  const int64_t q0 = r0 * h;
  const int64_t q1 = r1 * h;
  std::vector<T> rec(static_cast<size_t>(q1 - q0));
  T* __restrict__ cur = rec.data() - q0;  // cur[q], q in [q0, q1)
  for (int64_t t = 0; t < steps; ++t) {
    const T* __restrict__ zp = t == 0 ? z0 : z + (t - 1) * batch * h;
    const int64_t row = t * batch * h;
    for (int64_t q = q0; q < q1; ++q) cur[q] = T(0);
    for (int64_t r = r0; r < r1; ++r) {
      T* __restrict__ out = cur + r * h;
      for (int64_t k = 0; k < h; ++k) {
        const T zk = zp[r * h + k];
        if (zk != T(0)) {
          const T* __restrict__ wrow = wt + k * h;
          for (int64_t n = 0; n < h; ++n) out[n] += zk * wrow[n];
        }
      }
    }
    for (int64_t q = q0; q < q1; ++q) {
      const T j = i[q] + (p[row + q] + cur[q]);
      const T uu = v[q] + a[q] * ((vl[q] - v[q]) + j);
      i[q] = j - bs[q] * j;
      T thr = vth[q];
      if (MODE == 1) thr = adapt[q] + c[q] * (vth[q] - adapt[q]);
      if (MODE == 2) thr = vth[q] + beta[q] * adapt[q];
      const T dd = uu - thr;
      const bool s = dd > T(0);
      const T zz = s ? T(1) : T(0);
      if (MODE == 1) adapt[q] = thr + beta[q] * zz;
      if (MODE == 2) adapt[q] = adapt[q] + c[q] * (zz - adapt[q]);
      z[row + q] = zz;
      d[row + q] = dd;
      v[q] = s ? vr[q] : uu;
    }
  }
}

// Backward of recurrent_forward (voltage reset detached, adaptation jump not). sg: surrogate
// derivative at d; w: recurrent weights [n * h + k]; gz: gradient of the spikes (optional,
// row t at gz + t * gz_stride).
// Writes g, the gradient of the total input current [steps, batch, h]. gv, gi, gadapt, gzr:
// gradient of the final state (gzr: of the final spikes) on entry, of the initial one on exit.
template <typename T, int MODE>
void recurrent_backward(int64_t steps, int64_t batch, int64_t h, int64_t r0, int64_t r1,
                        const T* __restrict__ d, const T* __restrict__ sg,
                        const T* __restrict__ w, const T* __restrict__ gz, int64_t gz_stride,
                        T* __restrict__ g,
                        T* __restrict__ gv, T* __restrict__ gi, T* __restrict__ gadapt,
                        T* __restrict__ gzr, const T* __restrict__ a,
                        const T* __restrict__ bs, const T* __restrict__ c,
                        const T* __restrict__ beta) {
  const int64_t q0 = r0 * h;
  const int64_t q1 = r1 * h;
  for (int64_t t = steps - 1; t >= 0; --t) {
    const int64_t row = t * batch * h;
    for (int64_t q = q0; q < q1; ++q) {
      const bool s = d[row + q] > T(0);
      const T gak = MODE != 0 ? gadapt[q] : T(0);
      T gzz = (gz ? gz[t * gz_stride + q] : T(0)) + gzr[q];
      if (MODE == 1) gzz += gak * beta[q];
      if (MODE == 2) gzz += gak * c[q];
      const T gd = gzz * sg[row + q];
      const T du = (s ? T(0) : gv[q]) + gd;
      const T gik = gi[q];
      const T dj = (gik - bs[q] * gik) + a[q] * du;
      g[row + q] = dj;
      gv[q] = du - a[q] * du;
      gi[q] = dj;
      if (MODE == 1) {
        const T gthr = gak - gd;
        gadapt[q] = gthr - c[q] * gthr;
      }
      if (MODE == 2) gadapt[q] = (gak - c[q] * gak) - beta[q] * gd;
    }
    for (int64_t r = r0; r < r1; ++r) {
      T* __restrict__ acc = gzr + r * h;
      const T* __restrict__ gr = g + row + r * h;
      for (int64_t k = 0; k < h; ++k) acc[k] = T(0);
      for (int64_t n = 0; n < h; ++n) {
        const T gn = gr[n];
        const T* __restrict__ wrow = w + n * h;
        for (int64_t k = 0; k < h; ++k) acc[k] += gn * wrow[k];
      }
    }
  }
}

template <typename T, typename... Args>
void recurrent_forward_mode(int mode, Args... args) {
  if (mode == 0) recurrent_forward<T, 0>(args...);
  if (mode == 1) recurrent_forward<T, 1>(args...);
  if (mode == 2) recurrent_forward<T, 2>(args...);
}

template <typename T, typename... Args>
void recurrent_backward_mode(int mode, Args... args) {
  if (mode == 0) recurrent_backward<T, 0>(args...);
  if (mode == 1) recurrent_backward<T, 1>(args...);
  if (mode == 2) recurrent_backward<T, 2>(args...);
}

// Threads: OpenMP over independent neuron tiles (feed-forward) or batch rows (recurrent).
// Built with -fopenmp the library shares PyTorch's already loaded OpenMP runtime (same soname),
// hence its thread pool and torch.set_num_threads(); without OpenMP it runs single-threaded.
constexpr int64_t kParallelWork = int64_t(1) << 16;  // neuron-steps below which one thread wins

// Tiles of at most kBlock neurons that never cross a multiple of `period` (which divides m);
// run(k0, k1, shift) with shift = k0 - k0 % period.
template <typename Run>
void over_tiles(int64_t steps, int64_t m, int64_t period, Run run) {
  const int64_t per_period = (period + kBlock - 1) / kBlock;
  const int64_t tiles = (m / period) * per_period;
#pragma omp parallel for schedule(static) if (steps * m >= kParallelWork)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t shift = (tile / per_period) * period;
    const int64_t k0 = shift + (tile % per_period) * kBlock;
    const int64_t end = shift + period;
    run(k0, k0 + kBlock < end ? k0 + kBlock : end, shift);
  }
}

// Items [0, count) in one contiguous block per thread, run(first, end); one thread below
// kParallelWork elements of `work`. Recurrent kernels split batch rows (each time step then
// streams one contiguous [rows * h] slice of every [T, batch, h] array), pooling splits planes.
template <typename Run>
void over_blocks(int64_t count, int64_t work, Run run) {
#ifdef _OPENMP
  const int64_t threads = work >= kParallelWork ? omp_get_max_threads() : 1;
#else
  const int64_t threads = 1;
#endif
  const int64_t per_thread = (count + threads - 1) / threads;
#pragma omp parallel for schedule(static) if (threads > 1)
  for (int64_t block = 0; block < threads; ++block) {
    const int64_t first = block * per_thread;
    const int64_t end = first + per_thread < count ? first + per_thread : count;
    if (first < end) run(first, end);
  }
}

// Non-overlapping max pooling (kernel k, stride k, no padding; rows and columns beyond the last
// whole window are dropped) over `planes` contiguous [h, w] planes. Picks the maximum of each
// window as PyTorch's CPU max_pool2d does (row-major scan from -inf, a larger value or a NaN
// replaces the current one, so ties keep the first) and records its position in the window
// (r * k + c, uint8: k <= 15) instead of a flat int64 index. Starting the scan from the window's
// first element instead of -inf gives the same value and position.
template <typename T>
struct SameSizeUnsigned;
template <>
struct SameSizeUnsigned<float> {
  using type = uint32_t;
};
template <>
struct SameSizeUnsigned<double> {
  using type = uint64_t;
};

// `yes` where `condition`, else `no`: branch-free, bit by bit (exact for every value, signed
// zeros, inf and NaN included). The backward's windows are random: branches would be mispredicted.
template <typename T>
inline T choose(bool condition, T yes, T no) {
  using U = typename SameSizeUnsigned<T>::type;
  U a, b;
  std::memcpy(&a, &yes, sizeof a);
  std::memcpy(&b, &no, sizeof b);
  const U mask = U(0) - static_cast<U>(condition);
  const U bits = (a & mask) | (b & ~mask);
  T out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

// A branch here: spike maps are mostly silent windows, where it is predicted well (a branch-free
// select measured slower in the forward pass).
template <typename T>
inline void take_if_larger(T value, int32_t position, T& best, int32_t& at) {
  if (value > best || value != value) {
    best = value;
    at = position;
  }
}

template <typename T>
void max_pool_forward(int64_t p0, int64_t p1, int64_t h, int64_t w, int64_t k,
                      const T* __restrict__ x, T* __restrict__ y,
                      uint8_t* __restrict__ where) {
  const int64_t oh = h / k, ow = w / k;
  for (int64_t plane = p0; plane < p1; ++plane) {
    for (int64_t r = 0; r < oh; ++r) {
      const T* top = x + plane * h * w + r * k * w;
      T* yr = y + (plane * oh + r) * ow;
      uint8_t* wr = where + (plane * oh + r) * ow;
      if (k == 2) {  // the usual case: straight-line code per window
        const T* bottom = top + w;
        for (int64_t c = 0; c < ow; ++c) {
          T best = top[2 * c];
          int32_t at = 0;
          take_if_larger(top[2 * c + 1], 1, best, at);
          take_if_larger(bottom[2 * c], 2, best, at);
          take_if_larger(bottom[2 * c + 1], 3, best, at);
          yr[c] = best;
          wr[c] = static_cast<uint8_t>(at);
        }
        continue;
      }
      for (int64_t c = 0; c < ow; ++c) {
        T best = top[c * k];
        int32_t at = 0;
        for (int64_t dr = 0; dr < k; ++dr) {
          for (int64_t dc = dr == 0 ? 1 : 0; dc < k; ++dc) {
            take_if_larger(top[dr * w + c * k + dc], static_cast<int32_t>(dr * k + dc), best, at);
          }
        }
        yr[c] = best;
        wr[c] = static_cast<uint8_t>(at);
      }
    }
  }
}

// Backward of max_pool_forward: every input element gets the output gradient of its window if
// it is that window's recorded maximum, else 0 (written once each: no separate zero fill).
template <typename T>
void max_pool_backward(int64_t p0, int64_t p1, int64_t h, int64_t w, int64_t k,
                       const T* __restrict__ gy, const uint8_t* __restrict__ where,
                       T* __restrict__ gx) {
  const int64_t oh = h / k, ow = w / k;
  for (int64_t plane = p0; plane < p1; ++plane) {
    T* gp = gx + plane * h * w;
    for (int64_t r = 0; r < oh; ++r) {
      const T* gr = gy + (plane * oh + r) * ow;
      const uint8_t* wr = where + (plane * oh + r) * ow;
      for (int64_t dr = 0; dr < k; ++dr) {
        T* row = gp + (r * k + dr) * w;
        if (k == 2) {
          const int32_t left = static_cast<int32_t>(2 * dr);
          for (int64_t c = 0; c < ow; ++c) {
            const int32_t at = wr[c];
            row[2 * c] = choose(at == left, gr[c], T(0));
            row[2 * c + 1] = choose(at == left + 1, gr[c], T(0));
          }
        } else {
          for (int64_t c = 0; c < ow; ++c) {
            for (int64_t dc = 0; dc < k; ++dc) {
              row[c * k + dc] = choose(wr[c] == dr * k + dc, gr[c], T(0));
            }
          }
        }
        for (int64_t iw = ow * k; iw < w; ++iw) row[iw] = T(0);
      }
    }
    for (int64_t ih = oh * k; ih < h; ++ih) {
      for (int64_t iw = 0; iw < w; ++iw) gp[ih * w + iw] = T(0);
    }
  }
}

}  // namespace

#define SPIKEEXP_EXPORT(T, SUFFIX)                                                            \
  extern "C" void lif_forward_##SUFFIX(int64_t steps, int64_t m, int64_t period, const T* x,  \
                                       int64_t x_stride, T* z, T* u, T* j, T* v, T* i,        \
                                       const T* a, const T* b, const T* vl, const T* vth,     \
                                       const T* vr) {                                         \
    over_tiles(steps, m, period, [&](int64_t k0, int64_t k1, int64_t shift) {                 \
      lif_forward<T>(steps, m, k0, k1, shift, x, x_stride, z, u, j, v, i, a, b, vl, vth, vr); \
    });                                                                                       \
  }                                                                                           \
  extern "C" void lif_backward_##SUFFIX(                                                      \
      int surrogate, double alpha, int64_t steps, int64_t m, int64_t period, const T* u, T* g, \
      const T* gz, int64_t gz_stride, T* gv, T* gi, const T* v0, const T* j, const T* a,      \
      const T* b, const T* vl, const T* vth, const T* vr, T* ga, T* gb, T* gvl, T* gvth,      \
      T* gvr) {                                                                               \
    over_tiles(steps, m, period, [&](int64_t k0, int64_t k1, int64_t shift) {                 \
      lif_backward<T>(surrogate, steps, m, k0, k1, shift, T(alpha), u, g, gz, gz_stride, gv,  \
                      gi, v0, j, a, b, vl, vth, vr, ga, gb, gvl, gvth, gvr);                  \
    });                                                                                       \
  }                                                                                           \
  extern "C" void recurrent_forward_##SUFFIX(                                                 \
      int mode, int64_t steps, int64_t batch, int64_t h, const T* p, const T* wt,             \
      const T* z0, T* z, T* d, T* v, T* i, T* adapt, const T* a, const T* bs, const T* c,     \
      const T* vl, const T* vth, const T* vr, const T* beta) {                                \
    over_blocks(batch, steps * batch * h, [&](int64_t r0, int64_t r1) {                       \
      recurrent_forward_mode<T>(mode, steps, batch, h, r0, r1, p, wt, z0, z, d, v, i, adapt,  \
                                a, bs, c, vl, vth, vr, beta);                                 \
    });                                                                                       \
  }                                                                                           \
  extern "C" void recurrent_backward_##SUFFIX(                                                \
      int mode, int64_t steps, int64_t batch, int64_t h, const T* d, const T* sg,             \
      const T* w, const T* gz, int64_t gz_stride, T* g, T* gv, T* gi, T* gadapt, T* gzr,      \
      const T* a, const T* bs, const T* c, const T* beta) {                                   \
    over_blocks(batch, steps * batch * h, [&](int64_t r0, int64_t r1) {                       \
      recurrent_backward_mode<T>(mode, steps, batch, h, r0, r1, d, sg, w, gz, gz_stride, g,   \
                                 gv, gi, gadapt, gzr, a, bs, c, beta);                        \
    });                                                                                       \
  }

#define SPIKEEXP_EXPORT_POOL(T, SUFFIX)                                                       \
  extern "C" void max_pool_forward_##SUFFIX(int64_t planes, int64_t h, int64_t w, int64_t k,  \
                                            const T* x, T* y, uint8_t* where) {               \
    over_blocks(planes, planes * h * w, [&](int64_t p0, int64_t p1) {                         \
      max_pool_forward<T>(p0, p1, h, w, k, x, y, where);                                      \
    });                                                                                       \
  }                                                                                           \
  extern "C" void max_pool_backward_##SUFFIX(int64_t planes, int64_t h, int64_t w, int64_t k, \
                                             const T* gy, const uint8_t* where, T* gx) {      \
    over_blocks(planes, planes * h * w, [&](int64_t p0, int64_t p1) {                         \
      max_pool_backward<T>(p0, p1, h, w, k, gy, where, gx);                                   \
    });                                                                                       \
  }

SPIKEEXP_EXPORT_POOL(float, f32)
SPIKEEXP_EXPORT_POOL(double, f64)
SPIKEEXP_EXPORT(float, f32)
SPIKEEXP_EXPORT(double, f64)

// ---------------------------------------------------------------------------------------------
// Leaky integrator (LI) readout and feed-forward LSNN sequences. Same conventions as the
// kernels above (parameters repeat every `period` neurons, tiles of kBlock neurons, input row t
// at x + t * x_stride), and every reset is written as the reference writes it,
// v <- (1 - z) u + z v_reset, so an infinite or NaN voltage propagates exactly as in the step
// loop (no select).

namespace {

// LI over `steps` steps: out[t] = v after step t; j_out (optional) the current after the input.
template <typename T>
void li_forward(int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift,
                const T* __restrict__ x, int64_t x_stride, T* __restrict__ out,
                T* __restrict__ j_out, T* __restrict__ v, T* __restrict__ i,
                const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ vl) {
  for (int64_t start = k0; start < k1; start += kBlock) {
    const int64_t end = start + kBlock < k1 ? start + kBlock : k1;
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t row = t * m;
      for (int64_t k = start; k < end; ++k) {
        const int64_t q = k - shift;
        const T j = i[k] + x[t * x_stride + k];
        const T vv = v[k] + a[q] * ((vl[q] - v[k]) + j);
        i[k] = j - b[q] * j;
        v[k] = vv;
        out[row + k] = vv;
        if (j_out) j_out[row + k] = j;
      }
    }
  }
}

// Backward of li_forward. gout: gradient of the outputs (optional; row t at gout + t *
// gout_stride). gv, gi: gradient of the final state on entry, of the initial state on exit.
// gx: input gradient [steps, m]. With parameter gradients (ga != nullptr; one period) the
// outputs `out`, the initial voltage v0 and the currents j are read.
template <typename T>
void li_backward(int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift,
                 const T* __restrict__ gout, int64_t gout_stride, T* __restrict__ gx,
                 T* __restrict__ gv, T* __restrict__ gi, const T* __restrict__ out,
                 const T* __restrict__ v0, const T* __restrict__ j, const T* __restrict__ a,
                 const T* __restrict__ b, const T* __restrict__ vl, T* __restrict__ ga,
                 T* __restrict__ gb, T* __restrict__ gvl) {
  for (int64_t start = k0; start < k1; start += kBlock) {
    const int64_t end = start + kBlock < k1 ? start + kBlock : k1;
    for (int64_t t = steps - 1; t >= 0; --t) {
      const int64_t row = t * m;
      for (int64_t k = start; k < end; ++k) {
        const int64_t q = k - shift;
        const T du = gout ? gv[k] + gout[t * gout_stride + k] : gv[k];
        const T gik = gi[k];
        const T dj = (gik - b[q] * gik) + a[q] * du;
        gx[row + k] = dj;
        if (ga) {
          const T vprev = t > 0 ? out[row - m + k] : v0[k];
          const T jj = j[row + k];
          ga[k] += du * ((vl[q] - vprev) + jj);
          gb[k] -= gik * jj;
          gvl[k] += a[q] * du;
        }
        gv[k] = du - a[q] * du;
        gi[k] = dj;
      }
    }
  }
}

// Feed-forward LSNN (MODE 1: "norse", the adaptation variable is the threshold; MODE 2:
// "bellec", threshold v_th + beta b), reset not detached. Writes spikes z, the pre-reset
// voltage u and the threshold distance d (both optional: gradients only); v, i, adapt: state.
template <typename T, int MODE>
void lsnn_forward(int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift,
                  const T* __restrict__ x, int64_t x_stride, T* __restrict__ z,
                  T* __restrict__ u, T* __restrict__ d, T* __restrict__ v, T* __restrict__ i,
                  T* __restrict__ adapt, const T* __restrict__ a, const T* __restrict__ bs,
                  const T* __restrict__ c, const T* __restrict__ vl, const T* __restrict__ vth,
                  const T* __restrict__ vr, const T* __restrict__ beta) {
  for (int64_t start = k0; start < k1; start += kBlock) {
    const int64_t end = start + kBlock < k1 ? start + kBlock : k1;
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t row = t * m;
      for (int64_t k = start; k < end; ++k) {
        const int64_t q = k - shift;
        const T j = i[k] + x[t * x_stride + k];
        const T uu = v[k] + a[q] * ((vl[q] - v[k]) + j);
        i[k] = j - bs[q] * j;
        const T thr = MODE == 1 ? adapt[k] + c[q] * (vth[q] - adapt[k])
                                : vth[q] + beta[q] * adapt[k];
        const T dd = uu - thr;
        const T zz = dd > T(0) ? T(1) : T(0);
        if (MODE == 1) adapt[k] = thr + beta[q] * zz;
        if (MODE == 2) adapt[k] = adapt[k] + c[q] * (zz - adapt[k]);
        z[row + k] = zz;
        if (u) u[row + k] = uu;
        if (d) d[row + k] = dd;
        v[k] = (T(1) - zz) * uu + zz * vr[q];
      }
    }
  }
}

// Backward of lsnn_forward. g: surrogate derivative at d on entry, input gradient on exit.
// gz: gradient of the spikes (optional, row t at gz + t * gz_stride). gv, gi, gadapt: gradient
// of the final state on entry, of the initial state on exit.
template <typename T, int MODE>
void lsnn_backward(int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift,
                   const T* __restrict__ u, const T* __restrict__ d, T* __restrict__ g,
                   const T* __restrict__ gz, int64_t gz_stride, T* __restrict__ gv,
                   T* __restrict__ gi, T* __restrict__ gadapt, const T* __restrict__ a,
                   const T* __restrict__ bs, const T* __restrict__ c, const T* __restrict__ vr,
                   const T* __restrict__ beta) {
  for (int64_t start = k0; start < k1; start += kBlock) {
    const int64_t end = start + kBlock < k1 ? start + kBlock : k1;
    for (int64_t t = steps - 1; t >= 0; --t) {
      const int64_t row = t * m;
      for (int64_t k = start; k < end; ++k) {
        const int64_t q = k - shift;
        const T uu = u[row + k];
        const T zz = d[row + k] > T(0) ? T(1) : T(0);
        const T gvk = gv[k];
        const T gak = gadapt[k];
        T gzz = (gz ? gz[t * gz_stride + k] : T(0)) + gvk * (vr[q] - uu);
        gzz += MODE == 1 ? gak * beta[q] : gak * c[q];
        const T gd = gzz * g[row + k];
        const T du = (T(1) - zz) * gvk + gd;
        const T gik = gi[k];
        const T dj = (gik - bs[q] * gik) + a[q] * du;
        g[row + k] = dj;
        gv[k] = du - a[q] * du;
        gi[k] = dj;
        if (MODE == 1) {
          const T gthr = gak - gd;
          gadapt[k] = gthr - c[q] * gthr;
        } else {
          gadapt[k] = (gak - c[q] * gak) - beta[q] * gd;
        }
      }
    }
  }
}

}  // namespace

#define SPIKEEXP_EXPORT_LI_LSNN(T, SUFFIX)                                                    \
  extern "C" void li_forward_##SUFFIX(int64_t steps, int64_t m, int64_t period, const T* x,   \
                                      int64_t x_stride, T* out, T* j, T* v, T* i, const T* a, \
                                      const T* b, const T* vl) {                              \
    over_tiles(steps, m, period, [&](int64_t k0, int64_t k1, int64_t shift) {                 \
      li_forward<T>(steps, m, k0, k1, shift, x, x_stride, out, j, v, i, a, b, vl);            \
    });                                                                                       \
  }                                                                                           \
  extern "C" void li_backward_##SUFFIX(int64_t steps, int64_t m, int64_t period,              \
                                       const T* gout, int64_t gout_stride, T* gx, T* gv,      \
                                       T* gi, const T* out, const T* v0, const T* j,          \
                                       const T* a, const T* b, const T* vl, T* ga, T* gb,     \
                                       T* gvl) {                                              \
    over_tiles(steps, m, period, [&](int64_t k0, int64_t k1, int64_t shift) {                 \
      li_backward<T>(steps, m, k0, k1, shift, gout, gout_stride, gx, gv, gi, out, v0, j, a,   \
                     b, vl, ga, gb, gvl);                                                     \
    });                                                                                       \
  }                                                                                           \
  extern "C" void lsnn_forward_##SUFFIX(                                                      \
      int mode, int64_t steps, int64_t m, int64_t period, const T* x, int64_t x_stride, T* z, \
      T* u, T* d, T* v, T* i, T* adapt, const T* a, const T* bs, const T* c, const T* vl,     \
      const T* vth, const T* vr, const T* beta) {                                             \
    over_tiles(steps, m, period, [&](int64_t k0, int64_t k1, int64_t shift) {                 \
      if (mode == 1)                                                                          \
        lsnn_forward<T, 1>(steps, m, k0, k1, shift, x, x_stride, z, u, d, v, i, adapt, a, bs, \
                           c, vl, vth, vr, beta);                                             \
      else                                                                                    \
        lsnn_forward<T, 2>(steps, m, k0, k1, shift, x, x_stride, z, u, d, v, i, adapt, a, bs, \
                           c, vl, vth, vr, beta);                                             \
    });                                                                                       \
  }                                                                                           \
  extern "C" void lsnn_backward_##SUFFIX(                                                     \
      int mode, int64_t steps, int64_t m, int64_t period, const T* u, const T* d, T* g,       \
      const T* gz, int64_t gz_stride, T* gv, T* gi, T* gadapt, const T* a, const T* bs,       \
      const T* c, const T* vr, const T* beta) {                                               \
    over_tiles(steps, m, period, [&](int64_t k0, int64_t k1, int64_t shift) {                 \
      if (mode == 1)                                                                          \
        lsnn_backward<T, 1>(steps, m, k0, k1, shift, u, d, g, gz, gz_stride, gv, gi, gadapt,  \
                            a, bs, c, vr, beta);                                              \
      else                                                                                    \
        lsnn_backward<T, 2>(steps, m, k0, k1, shift, u, d, g, gz, gz_stride, gv, gi, gadapt,  \
                            a, bs, c, vr, beta);                                              \
    });                                                                                       \
  }

SPIKEEXP_EXPORT_LI_LSNN(float, f32)
SPIKEEXP_EXPORT_LI_LSNN(double, f64)
