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

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>
#if defined(__SSE2__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

// Build-time switches of the memory access pattern (benchmarks/bench_kernels.py --variants
// builds the library with each turned off to measure what it brings).
#ifndef SPIKEEXP_TILE
#define SPIKEEXP_TILE 1024  // neurons per tile (kBlock)
#endif
#ifndef SPIKEEXP_STREAM
#define SPIKEEXP_STREAM 1  // streaming stores of [T, ...] outputs
#endif
#ifndef SPIKEEXP_PREFETCH
#define SPIKEEXP_PREFETCH 1  // software prefetch of the next time step's row
#endif

namespace {

// Neurons per tile of the feed-forward kernels: a tile's state and parameters (7 arrays) stay
// in L1/L2 while all T steps run over it, and each time step streams one contiguous row chunk
// of every [T, ...] array (long enough for the hardware prefetchers).
constexpr int64_t kBlock = SPIKEEXP_TILE;
constexpr bool kStream = SPIKEEXP_STREAM != 0;  // streaming stores (below)

// ---------------------------------------------------------------------------------------------
// Memory access. Each time step of a tile touches one short row chunk (kBlock neurons) of every
// [T, ...] array, the next step the chunk one row further: too short a stream for the hardware
// prefetchers, so the AVX-512 kernels prefetch the next step's chunk themselves. Rows of outputs
// that are written once and read only after the whole kernel (spikes, saved voltages, input
// gradients) bypass the caches with streaming (non-temporal) stores where 64-byte aligned: no
// read-for-ownership of the destination line, a third less memory traffic per written array.
// sfence() at the end of each thread's work orders them.

#if defined(__AVX512F__)
constexpr int64_t kLanes = 16;  // floats per vector register

inline bool aligned64(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 63) == 0; }

inline void store_lanes(float* p, __m512 value, __mmask16 lanes, bool stream) {
  if (stream && lanes == 0xFFFF) {
    _mm512_stream_ps(p, value);
  } else {
    _mm512_mask_storeu_ps(p, lanes, value);
  }
}

inline __mmask16 tail_lanes(int64_t left) {  // the first min(left, 16) lanes (none if left <= 0)
  if (left <= 0) return 0;
  return left >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
}
#endif

inline void sfence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

// ---------------------------------------------------------------------------------------------
// bfloat16 inputs, spikes and spike gradients (the state stays float32): the bits of PyTorch's
// c10::BFloat16, converted as it converts (round to nearest even, NaN to 0x7FC0).
struct BFloat16 {
  uint16_t bits;
};

template <typename T>
inline T load(const T* p) {
  return *p;
}

inline float load(const BFloat16* p) {
  const uint32_t bits = static_cast<uint32_t>(p->bits) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

template <typename T>
inline void store(T* p, T value) {
  *p = value;
}

inline void store(BFloat16* p, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  p->bits = value != value ? uint16_t(0x7FC0) : static_cast<uint16_t>(rounded);
}

// ---------------------------------------------------------------------------------------------
// Feed-forward LIF over `steps` steps of `m` neurons (z, u, j: [steps, m], row-major; input
// row t at x + t * x_stride: x_stride m, or 0 for the same input at every step). v, i hold the
// initial state on entry and the final state on exit. u receives the pre-reset voltage
// (optional: not needed without gradients), j (optional) the synaptic current after the input
// (needed for gradients of the rate constants). Parameters of neuron k: entry k - shift.
// The reset is v <- (1 - z) u + z v_reset, as in lif_step (an infinite u becomes NaN there,
// never v_reset; a NaN u does not spike and stays NaN).
// X is the type of the input and the spikes (T, or BFloat16 with a float state).
template <typename T, typename X = T>
void lif_forward(int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift,
                 const X* __restrict__ x, int64_t x_stride,
                 X* __restrict__ z, T* __restrict__ u, T* __restrict__ j_out, T* __restrict__ v,
                 T* __restrict__ i, const T* __restrict__ a, const T* __restrict__ b,
                 const T* __restrict__ vl, const T* __restrict__ vth,
                 const T* __restrict__ vr) {
  for (int64_t start = k0; start < k1; start += kBlock) {
    const int64_t end = start + kBlock < k1 ? start + kBlock : k1;
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t row = t * m;
      for (int64_t k = start; k < end; ++k) {
        const int64_t q = k - shift;
        const T j = i[k] + load(x + t * x_stride + k);
        const T uu = v[k] + a[q] * ((vl[q] - v[k]) + j);
        i[k] = j - b[q] * j;
        const T zz = uu - vth[q] > T(0) ? T(1) : T(0);
        store(z + row + k, zz);
        if (u) u[row + k] = uu;
        if (j_out) j_out[row + k] = j;
        v[k] = (T(1) - zz) * uu + zz * vr[q];
      }
    }
  }
}

#if defined(__AVX512F__)
// lif_forward for float, 16 neurons per instruction (the same operations, hence the same
// rounding: no fused multiply-add), streaming stores for z, u and j.
template <>
void lif_forward<float, float>(int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift,
                        const float* __restrict__ x, int64_t x_stride, float* __restrict__ z,
                        float* __restrict__ u, float* __restrict__ j_out,
                        float* __restrict__ v, float* __restrict__ i,
                        const float* __restrict__ a, const float* __restrict__ b,
                        const float* __restrict__ vl, const float* __restrict__ vth,
                        const float* __restrict__ vr) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t start = k0; start < k1; start += kBlock) {
    const int64_t end = start + kBlock < k1 ? start + kBlock : k1;
    for (int64_t t = 0; t < steps; ++t) {
      const float* xt = x + t * x_stride;
      float* zt = z + t * m;
      float* ut = u ? u + t * m : nullptr;
      float* jt = j_out ? j_out + t * m : nullptr;
      const bool stream = kStream && aligned64(zt + start) && (!ut || aligned64(ut + start)) &&
                          (!jt || aligned64(jt + start));
      const float* xn = t + 1 < steps ? xt + x_stride : xt;
      for (int64_t k = start; k < end; k += kLanes) {
        const int64_t q = k - shift;
        const __mmask16 lanes = tail_lanes(end - k);
        if (SPIKEEXP_PREFETCH) _mm_prefetch(reinterpret_cast<const char*>(xn + k), _MM_HINT_T0);
        const __m512 vk = _mm512_maskz_loadu_ps(lanes, v + k);
        const __m512 jj = _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, i + k),
                                        _mm512_maskz_loadu_ps(lanes, xt + k));
        const __m512 ak = _mm512_maskz_loadu_ps(lanes, a + q);
        const __m512 leak = _mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, vl + q), vk);
        const __m512 uu = _mm512_add_ps(vk, _mm512_mul_ps(ak, _mm512_add_ps(leak, jj)));
        const __m512 bj = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, b + q), jj);
        _mm512_mask_storeu_ps(i + k, lanes, _mm512_sub_ps(jj, bj));
        const __m512 distance = _mm512_sub_ps(uu, _mm512_maskz_loadu_ps(lanes, vth + q));
        const __m512 zz = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(distance, zero, _CMP_GT_OQ), one);
        store_lanes(zt + k, zz, lanes, stream);
        if (ut) store_lanes(ut + k, uu, lanes, stream);
        if (jt) store_lanes(jt + k, jj, lanes, stream);
        const __m512 kept = _mm512_mul_ps(_mm512_sub_ps(one, zz), uu);
        const __m512 reset = _mm512_mul_ps(zz, _mm512_maskz_loadu_ps(lanes, vr + q));
        _mm512_mask_storeu_ps(v + k, lanes, _mm512_add_ps(kept, reset));
      }
    }
  }
}
#endif

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
  const T ax = alpha * std::fabs(x);
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
    return alpha * (c < T(0) ? T(0) : c);  // alpha max(0, 1 - alpha |x|), NaN stays NaN
  }
  if (SG == kStraightThrough) return T(1);
  return given;
}

// Backward of lif_forward (reset not detached), the adjoint of each lif_step in the order in
// which autograd evaluates and sums the reference loop's gradient terms, so that input and
// state gradients round identically (finite, infinite and NaN values alike). For one step, with
// z = H(u - v_th), sigma' the surrogate derivative, gv, gi the gradients of the state after the
// step and gz that of the spikes:
//   g_z  = (gz + gv v_reset) - gv u          (the spike's three uses: output, reset, kept part)
//   g_u  = gv (1 - z) + g_z sigma'(u - v_th)
//   g_j  = (gi - b gi) + a g_u               (g_j is the input gradient of the step)
//   gv' = g_u - a g_u,  gi' = g_j            (gradients of the state before the step)
// With SG == kGiven, g holds sigma' on entry; otherwise it is computed here (g's entry is not
// read). g holds the input gradient on exit (not written, and may be null without kGiven, when
// the gradient summed over time is asked for: gsum in lif_backward_tiles). gz: gradient of the
// spikes (optional), row t at gz + t * gz_stride (stride 0: the same gradient at every step, e.g. a loss on spike counts).
// gv, gi: gradient of the final state on entry, of the initial state on exit. With PARAMS the
// parameter gradients ga ... gvr are accumulated per neuron (needs j and v0). One call handles
// one time step of one tile so that every inner loop has a single access pattern (vectorised).
// Parameters of neuron k: entry k - shift; with PARAMS shift is 0 (one period: all neurons).
template <typename T, typename X, bool PARAMS, bool GZ, int SG>
inline void lif_backward_step(int64_t start, int64_t end, int64_t shift, T alpha,
                              const T* __restrict__ ut,
                              const T* __restrict__ uprev, T* __restrict__ gt,
                              const X* __restrict__ gzt, T* __restrict__ gv, T* __restrict__ gi,
                              const T* __restrict__ jt, const T* __restrict__ a,
                              const T* __restrict__ b, const T* __restrict__ vl,
                              const T* __restrict__ vth, const T* __restrict__ vr,
                              T* __restrict__ ga, T* __restrict__ gb, T* __restrict__ gvl,
                              T* __restrict__ gvth, T* __restrict__ gvr, bool first) {
  for (int64_t k = start; k < end; ++k) {
    const int64_t q = k - shift;
    const T uu = ut[k];
    const T distance = uu - vth[q];
    const T zz = distance > T(0) ? T(1) : T(0);
    const T gvk = gv[k];
    const T gik = gi[k];
    const T kept = gvk * vr[q];
    const T gzk = (GZ ? load(gzt + k) + kept : kept) - gvk * uu;
    const T gd = gzk * surrogate_derivative<SG>(distance, alpha, SG == kGiven ? gt[k] : T(0));
    const T du = gvk * (T(1) - zz) + gd;
    const T dj = (gik - b[q] * gik) + a[q] * du;
    gt[k] = dj;
    if (PARAMS) {
      // uprev: pre-reset voltage of the previous step, or the initial voltage (first step).
      const T up = uprev[k];
      const T zp = !first && up - vth[q] > T(0) ? T(1) : T(0);
      const T vprev = first ? up : (T(1) - zp) * up + zp * vr[q];
      const T jj = jt[k];
      ga[k] += du * ((vl[q] - vprev) + jj);
      gb[k] -= gik * jj;
      gvl[k] += a[q] * du;
      gvth[k] -= gd;
      gvr[k] += gvk * zz;
    }
    gv[k] = du - a[q] * du;
    gi[k] = dj;
  }
}

#if defined(__AVX512F__)
// The surrogate derivative of 16 lanes, operation for operation as surrogate_derivative.
template <int SG>
inline __m512 surrogate_derivative16(__m512 x, __m512 alpha, __m512 given) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 ax = _mm512_mul_ps(alpha, _mm512_abs_ps(x));
  if (SG == kSuper) {
    const __m512 s = _mm512_add_ps(ax, one);
    return _mm512_div_ps(one, _mm512_mul_ps(s, s));
  }
  if (SG == kFastSigmoid) {
    const __m512 s = _mm512_add_ps(one, ax);
    const __m512 half = _mm512_div_ps(one, _mm512_mul_ps(_mm512_set1_ps(2.0f), _mm512_mul_ps(s, s)));
    return _mm512_mul_ps(half, alpha);
  }
  if (SG == kTriangle) {
    const __m512 c = _mm512_sub_ps(one, ax);
    const __mmask16 negative = _mm512_cmp_ps_mask(c, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mul_ps(alpha, _mm512_mask_mov_ps(c, negative, _mm512_setzero_ps()));
  }
  if (SG == kStraightThrough) return one;
  return given;
}

// lif_backward_step for float without parameter gradients, 16 neurons per instruction (the
// same operations in the same order: the same bits), the input gradient written with streaming
// stores where 64-byte aligned (it is read only after the whole backward).
template <bool GZ, int SG>
inline void lif_backward_step16(int64_t start, int64_t end, int64_t shift, float alpha_value,
                                const float* __restrict__ ut, const float* __restrict__ next,
                                float* __restrict__ gt, bool may_stream,
                                const float* __restrict__ gzt, float* __restrict__ gv,
                                float* __restrict__ gi, const float* __restrict__ a,
                                const float* __restrict__ b, const float* __restrict__ vth,
                                const float* __restrict__ vr) {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  const __m512 alpha = _mm512_set1_ps(alpha_value);
  const bool stream = kStream && may_stream && aligned64(gt + start);
  for (int64_t k = start; k < end; k += kLanes) {
    const int64_t q = k - shift;
    const __mmask16 lanes = tail_lanes(end - k);
    if (SPIKEEXP_PREFETCH) _mm_prefetch(reinterpret_cast<const char*>(next + k), _MM_HINT_T0);
    const __m512 uu = _mm512_maskz_loadu_ps(lanes, ut + k);
    const __m512 distance = _mm512_sub_ps(uu, _mm512_maskz_loadu_ps(lanes, vth + q));
    const __m512 zz = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(distance, zero, _CMP_GT_OQ), one);
    const __m512 gvk = _mm512_maskz_loadu_ps(lanes, gv + k);
    const __m512 gik = _mm512_maskz_loadu_ps(lanes, gi + k);
    const __m512 kept = _mm512_mul_ps(gvk, _mm512_maskz_loadu_ps(lanes, vr + q));
    const __m512 spike = GZ ? _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, gzt + k), kept) : kept;
    const __m512 gzk = _mm512_sub_ps(spike, _mm512_mul_ps(gvk, uu));
    const __m512 given = SG == kGiven ? _mm512_maskz_loadu_ps(lanes, gt + k) : zero;
    const __m512 gd = _mm512_mul_ps(gzk, surrogate_derivative16<SG>(distance, alpha, given));
    const __m512 du = _mm512_add_ps(_mm512_mul_ps(gvk, _mm512_sub_ps(one, zz)), gd);
    const __m512 ak = _mm512_maskz_loadu_ps(lanes, a + q);
    const __m512 decay = _mm512_sub_ps(gik, _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, b + q), gik));
    const __m512 dj = _mm512_add_ps(decay, _mm512_mul_ps(ak, du));
    store_lanes(gt + k, dj, lanes, stream);
    _mm512_mask_storeu_ps(gv + k, lanes, _mm512_sub_ps(du, _mm512_mul_ps(ak, du)));
    _mm512_mask_storeu_ps(gi + k, lanes, dj);
  }
}
#endif

// The same step where some gradients are absent (not zero): the final state or the spikes of a
// loss that does not use them. Autograd then evaluates none of their terms, so an infinite
// voltage that meets an absent gradient does not turn into NaN (0 * inf). v_in, i_in, z_in: whether
// gv, gi and gz are present; returns whether the voltage gradient before the step is (the
// current gradient then always is, as gradients flow from v into i).
template <typename T, typename X, bool PARAMS, int SG>
inline bool lif_backward_partial_step(int64_t start, int64_t end, int64_t shift, T alpha,
                                      const T* ut, const T* uprev, T* gt, const X* gzt, T* gv,
                                      T* gi, const T* jt, const T* a, const T* b, const T* vl,
                                      const T* vth, const T* vr, T* ga, T* gb, T* gvl, T* gvth,
                                      T* gvr, bool first, bool v_in, bool i_in, bool z_in) {
  const bool z_out = z_in || v_in;  // the spike gets a gradient
  for (int64_t k = start; k < end; ++k) {
    const int64_t q = k - shift;
    const T uu = ut[k];
    const T distance = uu - vth[q];
    const T zz = distance > T(0) ? T(1) : T(0);
    const T gvk = gv[k];
    const T gik = gi[k];
    T gzk = T(0);
    if (v_in) gzk = (z_in ? load(gzt + k) + gvk * vr[q] : gvk * vr[q]) - gvk * uu;
    if (!v_in && z_in) gzk = load(gzt + k);
    T gd = T(0), du = T(0), dj = T(0);
    if (z_out) {
      gd = gzk * surrogate_derivative<SG>(distance, alpha, SG == kGiven ? gt[k] : T(0));
      du = v_in ? gvk * (T(1) - zz) + gd : gd;
    }
    if (i_in) dj = gik - b[q] * gik;
    if (z_out) dj = i_in ? dj + a[q] * du : a[q] * du;
    gt[k] = dj;
    if (PARAMS) {
      const T up = uprev[k];
      const T zp = !first && up - vth[q] > T(0) ? T(1) : T(0);
      const T vprev = first ? up : (T(1) - zp) * up + zp * vr[q];
      const T jj = jt[k];
      if (z_out) {
        ga[k] += du * ((vl[q] - vprev) + jj);
        gvl[k] += a[q] * du;
        gvth[k] -= gd;
      }
      if (i_in) gb[k] -= gik * jj;
      if (v_in) gvr[k] += gvk * zz;
    }
    gv[k] = z_out ? du - a[q] * du : T(0);
    gi[k] = dj;
  }
  return z_out;
}

// gsum (optional): the input gradient summed over time, [m], instead of g per step (for an
// input that is the same at every step: the gradient of that one step). Each step's gradient
// then goes to a tile-sized scratch row that stays in L1 (for SG == kGiven it first receives
// the step's surrogate derivative from g) and is added to gsum, latest step first.
template <typename T, typename X, bool PARAMS, bool GZ, int SG>
void lif_backward_tiles(int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift,
                        T alpha, const T* u, T* g, T* gsum, const X* gz, int64_t gz_stride,
                        T* gv, T* gi, bool v_given, bool i_given, const T* v0, const T* j,
                        const T* a, const T* b, const T* vl, const T* vth, const T* vr, T* ga,
                        T* gb, T* gvl, T* gvth, T* gvr) {
  std::vector<T> scratch(gsum ? static_cast<size_t>(kBlock) : 0);
  for (int64_t start = k0; start < k1; start += kBlock) {
    const int64_t end = start + kBlock < k1 ? start + kBlock : k1;
    bool v_in = v_given, i_in = i_given;
    for (int64_t t = steps - 1; t >= 0; --t) {
      const int64_t row = t * m;
      const T* uprev = t > 0 ? u + row - m : v0;
      const T* jt = PARAMS ? j + row : j;
      T* gt = gsum ? scratch.data() - start : g + row;  // gt[k] for k in [start, end)
      if (gsum && SG == kGiven) {
        for (int64_t k = start; k < end; ++k) gt[k] = g[row + k];
      }
      if (v_in && i_in) {
        bool vector = false;
#if defined(__AVX512F__)
        if constexpr (std::is_same_v<T, float> && std::is_same_v<X, float> && !PARAMS) {
          lif_backward_step16<GZ, SG>(start, end, shift, alpha, u + row, t > 0 ? u + row - m : u,
                                      gt, gsum == nullptr, gz + t * gz_stride, gv, gi, a, b,
                                      vth, vr);
          vector = true;
        }
#endif
        if (!vector) {
          lif_backward_step<T, X, PARAMS, GZ, SG>(start, end, shift, alpha, u + row, uprev, gt,
                                                  gz + t * gz_stride, gv, gi, jt, a, b, vl, vth,
                                                  vr, ga, gb, gvl, gvth, gvr, t == 0);
        }
      } else {
        v_in = lif_backward_partial_step<T, X, PARAMS, SG>(
            start, end, shift, alpha, u + row, uprev, gt, gz + t * gz_stride, gv, gi, jt, a, b,
            vl, vth, vr, ga, gb, gvl, gvth, gvr, t == 0, v_in, i_in, GZ);
        i_in = true;
      }
      if (gsum && t == steps - 1) {
        for (int64_t k = start; k < end; ++k) gsum[k] = gt[k];
      } else if (gsum) {
        for (int64_t k = start; k < end; ++k) gsum[k] += gt[k];
      }
    }
  }
}

template <typename T, typename X, int SG>
void lif_backward_sg(int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift, T alpha,
                     const T* u, T* g, T* gsum, const X* gz, int64_t gz_stride, T* gv, T* gi,
                     bool v_given, bool i_given, const T* v0, const T* j, const T* a, const T* b,
                     const T* vl, const T* vth, const T* vr, T* ga, T* gb, T* gvl, T* gvth,
                     T* gvr) {
#define SPIKEEXP_LIF_TILES(PARAMS, GZ)                                                        \
  lif_backward_tiles<T, X, PARAMS, GZ, SG>(steps, m, k0, k1, shift, alpha, u, g, gsum, gz,     \
                                           gz_stride, gv, gi, v_given, i_given, v0, j, a, b, \
                                           vl, vth, vr, ga, gb, gvl, gvth, gvr)
  const bool params = ga != nullptr;
  if (params && gz) SPIKEEXP_LIF_TILES(true, true);
  if (params && !gz) SPIKEEXP_LIF_TILES(true, false);
  if (!params && gz) SPIKEEXP_LIF_TILES(false, true);
  if (!params && !gz) SPIKEEXP_LIF_TILES(false, false);
#undef SPIKEEXP_LIF_TILES
}

// X: the type of the spikes' gradient gz (T, or BFloat16 with a float state).
template <typename T, typename X = T>
void lif_backward(int surrogate, int64_t steps, int64_t m, int64_t k0, int64_t k1, int64_t shift,
                  T alpha, const T* u, T* g, T* gsum, const X* gz, int64_t gz_stride, T* gv,
                  T* gi,
                  bool v_given, bool i_given, const T* v0, const T* j, const T* a, const T* b,
                  const T* vl, const T* vth, const T* vr, T* ga, T* gb, T* gvl, T* gvth,
                  T* gvr) {
#define SPIKEEXP_LIF_BACKWARD(SG)                                                             \
  lif_backward_sg<T, X, SG>(steps, m, k0, k1, shift, alpha, u, g, gsum, gz, gz_stride, gv, gi,  \
                            v_given, i_given, v0, j, a, b, vl, vth, vr, ga, gb, gvl, gvth, gvr)
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
      const T zz = dd > T(0) ? T(1) : T(0);
      if (MODE == 1) adapt[q] = thr + beta[q] * zz;
      if (MODE == 2) adapt[q] = adapt[q] + c[q] * (zz - adapt[q]);
      z[row + q] = zz;
      d[row + q] = dd;
      v[q] = (T(1) - zz) * uu + zz * vr[q];
    }
  }
}

// Backward of recurrent_forward (voltage reset detached, adaptation jump not). sg: surrogate
// derivative at d; w: recurrent weights [n * h + k]; gz: gradient of the spikes (optional,
// row t at gz + t * gz_stride).
// Writes g, the gradient of the total input current [steps, batch, h]. gv, gi, gadapt, gzr:
// gradient of the final state (gzr: of the final spikes) on entry, of the initial one on exit.
// gzr <- g_t W (the recurrent part of the spikes' gradient) is a loop per batch row; with
// w == nullptr it is left to the caller, who then runs one step per call and a matrix product
// (BLAS) in between: faster for large h, where each row's loop streams all of W.
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
      const T zz = d[row + q] > T(0) ? T(1) : T(0);
      const T gak = MODE != 0 ? gadapt[q] : T(0);
      T gzz = (gz ? gz[t * gz_stride + q] : T(0)) + gzr[q];
      if (MODE == 1) gzz += gak * beta[q];
      if (MODE == 2) gzz += gak * c[q];
      const T gd = gzz * sg[row + q];
      const T du = gv[q] * (T(1) - zz) + gd;  // the reset factor z is detached
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
    if (!w) continue;
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
// hence its thread pool; the team size is the one PyTorch uses (set_threads below, called by
// the loader with torch.get_num_threads() whenever that changes), in every calling thread.
// Without OpenMP the kernels run single-threaded.
constexpr int64_t kParallelWork = int64_t(1) << 16;  // neuron-steps below which one thread wins
int g_threads = 1;

int team_size(int64_t work) { return work >= kParallelWork ? g_threads : 1; }

// Tiles of at most kBlock neurons that never cross a multiple of `period` (which divides m);
// run(k0, k1, shift) with shift = k0 - k0 % period.
template <typename Run>
void over_tiles(int64_t steps, int64_t m, int64_t period, Run run) {
  const int64_t per_period = (period + kBlock - 1) / kBlock;
  const int64_t tiles = (m / period) * per_period;
  const int threads = team_size(steps * m);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < tiles; ++tile) {
      const int64_t shift = (tile / per_period) * period;
      const int64_t k0 = shift + (tile % per_period) * kBlock;
      const int64_t end = shift + period;
      run(k0, k0 + kBlock < end ? k0 + kBlock : end, shift);
    }
    sfence();
  }
}

// Items [0, count) in one contiguous block per thread, run(first, end); one thread below
// kParallelWork elements of `work`. Recurrent kernels split batch rows (each time step then
// streams one contiguous [rows * h] slice of every [T, batch, h] array), pooling splits planes.
template <typename Run>
void over_blocks(int64_t count, int64_t work, Run run) {
  const int threads = team_size(work);
  const int64_t per_thread = (count + threads - 1) / threads;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
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

#if defined(__AVX512F__)
// One output row of 2 x 2 pooling on float, 16 windows per instruction (the same comparisons as
// take_if_larger, in the same order: the same maxima and positions); returns how many outputs
// it wrote (all of the row).
inline int64_t max_pool_row2(const float* top, const float* bottom, int64_t ow, float* y,
                             uint8_t* where) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t c = 0; c < ow; c += kLanes) {
    const __mmask16 lanes = tail_lanes(ow - c);
    const __mmask16 low = tail_lanes(2 * (ow - c)), high = tail_lanes(2 * (ow - c) - kLanes);
    const __m512 t0 = _mm512_maskz_loadu_ps(low, top + 2 * c);
    const __m512 t1 = _mm512_maskz_loadu_ps(high, top + 2 * c + kLanes);
    const __m512 b0 = _mm512_maskz_loadu_ps(low, bottom + 2 * c);
    const __m512 b1 = _mm512_maskz_loadu_ps(high, bottom + 2 * c + kLanes);
    const __m512 candidates[3] = {_mm512_permutex2var_ps(t0, odd, t1),
                                  _mm512_permutex2var_ps(b0, even, b1),
                                  _mm512_permutex2var_ps(b0, odd, b1)};
    __m512 best = _mm512_permutex2var_ps(t0, even, t1);
    __m512i at = _mm512_setzero_si512();
    for (int position = 1; position <= 3; ++position) {
      const __m512 value = candidates[position - 1];
      const __mmask16 take = _mm512_cmp_ps_mask(value, best, _CMP_GT_OQ) |
                             _mm512_cmp_ps_mask(value, value, _CMP_UNORD_Q);
      best = _mm512_mask_mov_ps(best, take, value);
      at = _mm512_mask_mov_epi32(at, take, _mm512_set1_epi32(position));
    }
    _mm512_mask_storeu_ps(y + c, lanes, best);
    _mm512_mask_cvtepi32_storeu_epi8(where + c, lanes, at);
  }
  return ow;
}

// One input row (window row `left / 2`) of the 2 x 2 pooling gradient on float: the output
// gradient where the recorded position is `left` or `left + 1`, +0 elsewhere, 16 windows per
// instruction; returns how many windows it wrote (all of the row).
inline int64_t max_pool_grad_row2(const float* gy, const uint8_t* where, int32_t left,
                                  int64_t ow, float* row) {
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
  const __m512i at_left = _mm512_set1_epi32(left), at_right = _mm512_set1_epi32(left + 1);
  for (int64_t c = 0; c < ow; c += kLanes) {
    const __mmask16 lanes = tail_lanes(ow - c);
    const __mmask16 low = tail_lanes(2 * (ow - c)), high = tail_lanes(2 * (ow - c) - kLanes);
    const __m512 g = _mm512_maskz_loadu_ps(lanes, gy + c);
    const __m512i at = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes, where + c));
    const __m512 even = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, at_left), g);
    const __m512 odd = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, at_right), g);
    _mm512_mask_storeu_ps(row + 2 * c, low, _mm512_permutex2var_ps(even, first, odd));
    _mm512_mask_storeu_ps(row + 2 * c + kLanes, high, _mm512_permutex2var_ps(even, second, odd));
  }
  return ow;
}
#endif

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
        int64_t c = 0;
#if defined(__AVX512F__)
        if constexpr (std::is_same_v<T, float>) c = max_pool_row2(top, bottom, ow, yr, wr);
#endif
        for (; c < ow; ++c) {
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
          int64_t c = 0;
#if defined(__AVX512F__)
          if constexpr (std::is_same_v<T, float>) c = max_pool_grad_row2(gr, wr, left, ow, row);
#endif
          for (; c < ow; ++c) {
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
      T* gsum, const T* gz, int64_t gz_stride, T* gv, T* gi, int v_given, int i_given,        \
      const T* v0, const T* j, const T* a, const T* b, const T* vl, const T* vth,             \
      const T* vr, T* ga, T* gb, T* gvl, T* gvth, T* gvr) {                                   \
    over_tiles(steps, m, period, [&](int64_t k0, int64_t k1, int64_t shift) {                 \
      lif_backward<T>(surrogate, steps, m, k0, k1, shift, T(alpha), u, g, gsum, gz,           \
                      gz_stride, gv, gi, v_given != 0, i_given != 0, v0, j, a, b, vl, vth,    \
                      vr, ga, gb, gvl, gvth, gvr);                                            \
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

// Feed-forward LIF with bfloat16 input and spikes (forward) and spike gradients (backward), a
// float32 state: no conversion passes over [T, ...] in bf16-mixed training.
extern "C" void lif_forward_bf16(int64_t steps, int64_t m, int64_t period, const BFloat16* x,
                                 int64_t x_stride, BFloat16* z, float* u, float* j, float* v,
                                 float* i, const float* a, const float* b, const float* vl,
                                 const float* vth, const float* vr) {
  over_tiles(steps, m, period, [&](int64_t k0, int64_t k1, int64_t shift) {
    lif_forward<float, BFloat16>(steps, m, k0, k1, shift, x, x_stride, z, u, j, v, i, a, b, vl,
                                 vth, vr);
  });
}

extern "C" void lif_backward_bf16(int surrogate, double alpha, int64_t steps, int64_t m,
                                  int64_t period, const float* u, float* g, float* gsum,
                                  const BFloat16* gz,
                                  int64_t gz_stride, float* gv, float* gi, int v_given,
                                  int i_given, const float* v0, const float* j, const float* a,
                                  const float* b, const float* vl, const float* vth,
                                  const float* vr, float* ga, float* gb, float* gvl, float* gvth,
                                  float* gvr) {
  over_tiles(steps, m, period, [&](int64_t k0, int64_t k1, int64_t shift) {
    lif_backward<float, BFloat16>(surrogate, steps, m, k0, k1, shift, float(alpha), u, g, gsum,
                                  gz, gz_stride, gv, gi, v_given != 0, i_given != 0, v0, j, a, b, vl,
                                  vth, vr, ga, gb, gvl, gvth, gvr);
  });
}

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

// Threads of the kernels' parallel regions (the loader passes torch.get_num_threads()).
extern "C" void spikeexp_set_threads(int threads) { g_threads = threads > 0 ? threads : 1; }

// Threads for a parallel region over `work` items (the other sources of the library use it).
extern "C" int spikeexp_kernel_threads(int64_t work) { return team_size(work); }

// The number of threads a parallel region of the kernels runs on now (diagnostics and tests).
extern "C" int spikeexp_team_size() {
  int size = 1;
  const int threads = team_size(kParallelWork);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
#ifdef _OPENMP
#pragma omp single
    size = omp_get_num_threads();
#endif
  }
  return size;
}
