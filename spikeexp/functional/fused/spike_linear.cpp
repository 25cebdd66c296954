// Event-driven products for Linear layers whose input is spikes (mostly zeros), loaded with
// ctypes by spikeexp/functional/fused/build.py together with kernels.cpp.
//
// y = x W^T + b and the weight gradient gW = gy^T x touch a weight row or a gradient row only
// where x is nonzero. With x binary (the usual case) every term is a plain addition of a float32
// weight: no multiplication at all, and each sum is exact up to float32 rounding in the order
// of the nonzero inputs (a dense GEMM rounds in its own blocked order: the two agree to a few
// units in the last place). Non-binary x is multiplied in (x * w, then added; no fused
// multiply-add). Float32 only; AVX-512 where the CPU has it, plain loops otherwise.
//
// Layouts: x [rows, in], y [rows, out] and gy [rows, out] row-major; wt = W^T [in, out] and the
// weight gradient gwt = gW^T [in, out] row-major, so that one input's weights (or gradients)
// for a tile of outputs are contiguous.

#include <cmath>
#include <cstdint>
#include <vector>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

extern "C" int spikeexp_kernel_threads(int64_t work);  // kernels.cpp: threads for `work` items

namespace {

constexpr int64_t kTile = 128;  // output columns per register tile (8 vectors of 16 floats)

// Positions (and values) of the nonzero entries of x[0, n); returns their number. *ones
// becomes false if a nonzero entry is not exactly 1 (NaN counts as nonzero, not 1). idx and
// val need room for n + 16 entries.
int64_t nonzeros(const float* x, int64_t n, int32_t* idx, float* val, bool* ones) {
  int64_t count = 0;
  bool all_ones = true;
  int64_t k = 0;
#if defined(__AVX512F__)
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  const __m512i step = _mm512_set1_epi32(16);
  __m512i position = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (; k + 16 <= n; k += 16) {
    const __m512 v = _mm512_loadu_ps(x + k);
    const __mmask16 nz = _mm512_cmp_ps_mask(v, zero, _CMP_NEQ_UQ);
    if (nz) {
      all_ones &= _mm512_mask_cmp_ps_mask(nz, v, one, _CMP_EQ_OQ) == nz;
      // Compress in registers, store whole vectors (the memory form of compress is slow);
      // idx and val have room for 16 entries beyond n.
      _mm512_storeu_si512(idx + count, _mm512_maskz_compress_epi32(nz, position));
      _mm512_storeu_ps(val + count, _mm512_maskz_compress_ps(nz, v));
      count += __builtin_popcount(nz);
    }
    position = _mm512_add_epi32(position, step);
  }
#endif
  for (; k < n; ++k) {
    if (x[k] != 0.0f) {
      all_ones &= x[k] == 1.0f;
      idx[count] = static_cast<int32_t>(k);
      val[count++] = x[k];
    }
  }
  *ones = all_ones;
  return count;
}

// out[0, width) = init[0, width) + sum_e val[e] * rows[e][0, width) (no init: 0; val[e] = 1
// when `ones`: additions only); rows[e] = base + idx[e] * stride; width <= kTile. The sum is
// taken in chunks of kChunk terms, each chunk's partial sum added to the total (two-level
// summation: a rounding error growing like n / kChunk + kChunk instead of n terms).
constexpr int64_t kChunk = 32;

void accumulate(int64_t count, const int32_t* idx, const float* val, bool ones,
                const float* base, int64_t stride, const float* init, int64_t width,
                float* out) {
#if defined(__AVX512F__)
  constexpr int kVectors = kTile / 16;
  __mmask16 lanes[kVectors];
  __m512 total[kVectors];
#pragma GCC unroll 8
  for (int v = 0; v < kVectors; ++v) {
    const int64_t left = width - 16 * v;
    lanes[v] = left >= 16 ? __mmask16(0xFFFF) : left > 0 ? __mmask16((1u << left) - 1u) : 0;
    total[v] = _mm512_setzero_ps();
  }
  for (int64_t first = 0; first < count; first += kChunk) {
    const int64_t last = first + kChunk < count ? first + kChunk : count;
    __m512 part[kVectors];
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) part[v] = _mm512_setzero_ps();
    if (ones && width == kTile) {  // the usual case: whole tiles, plain loads
      for (int64_t e = first; e < last; ++e) {
        const float* row = base + idx[e] * stride;
#pragma GCC unroll 8
        for (int v = 0; v < kVectors; ++v) {
          part[v] = _mm512_add_ps(part[v], _mm512_loadu_ps(row + 16 * v));
        }
      }
    } else if (ones) {
      for (int64_t e = first; e < last; ++e) {
        const float* row = base + idx[e] * stride;
#pragma GCC unroll 8
        for (int v = 0; v < kVectors; ++v) {
          part[v] = _mm512_add_ps(part[v], _mm512_maskz_loadu_ps(lanes[v], row + 16 * v));
        }
      }
    } else {
      for (int64_t e = first; e < last; ++e) {
        const float* row = base + idx[e] * stride;
        const __m512 s = _mm512_set1_ps(val[e]);
#pragma GCC unroll 8
        for (int v = 0; v < kVectors; ++v) {
          const __m512 w = _mm512_maskz_loadu_ps(lanes[v], row + 16 * v);
          part[v] = _mm512_add_ps(part[v], _mm512_mul_ps(s, w));
        }
      }
    }
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) total[v] = _mm512_add_ps(total[v], part[v]);
  }
#pragma GCC unroll 8
  for (int v = 0; v < kVectors; ++v) {
    const __m512 start = init ? _mm512_maskz_loadu_ps(lanes[v], init + 16 * v) : total[v];
    _mm512_mask_storeu_ps(out + 16 * v, lanes[v], init ? _mm512_add_ps(start, total[v]) : start);
  }
#else
  float total[kTile], part[kTile];
  for (int64_t c = 0; c < width; ++c) total[c] = 0.0f;
  for (int64_t first = 0; first < count; first += kChunk) {
    const int64_t last = first + kChunk < count ? first + kChunk : count;
    for (int64_t c = 0; c < width; ++c) part[c] = 0.0f;
    for (int64_t e = first; e < last; ++e) {
      const float* row = base + idx[e] * stride;
      for (int64_t c = 0; c < width; ++c) part[c] += ones ? row[c] : val[e] * row[c];
    }
    for (int64_t c = 0; c < width; ++c) total[c] += part[c];
  }
  for (int64_t c = 0; c < width; ++c) out[c] = init ? init[c] + total[c] : total[c];
#endif
}

// Rows [r0, r1) of y = x W^T + b (bias optional), in blocks of kRowBlock rows: the nonzero
// positions of a block's rows, then per output tile and per slab of kSlab inputs (whose weight
// rows stay in L1) each row's terms from that slab, added to the row's running sum (which stays
// in L2). Loading the weights from L1 instead of L2 for every term is what makes the
// event-driven product faster than the GEMM; the per-slab partial sums also make it round
// better (two-level summation).
constexpr int64_t kRowBlock = 128;
constexpr int64_t kSlab = 256;  // inputs per slab (tuned by benchmarks/bench_spike_linear.py)

void forward_rows(int64_t r0, int64_t r1, int64_t in, int64_t out, const float* x,
                  const float* panels, const float* bias, float* y) {
  std::vector<int32_t> idx(static_cast<size_t>(kRowBlock * in + 16));
  std::vector<float> val(static_cast<size_t>(kRowBlock * in + 16));
  std::vector<int64_t> count(kRowBlock), cursor(kRowBlock);
  for (int64_t b0 = r0; b0 < r1; b0 += kRowBlock) {
    const int64_t rows = r1 - b0 < kRowBlock ? r1 - b0 : kRowBlock;
    bool ones = true;
    for (int64_t r = 0; r < rows; ++r) {
      bool row_ones = true;
      count[r] = nonzeros(x + (b0 + r) * in, in, idx.data() + r * in, val.data() + r * in,
                          &row_ones);
      ones &= row_ones;
    }
    for (int64_t c0 = 0; c0 < out; c0 += kTile) {
      const int64_t width = out - c0 < kTile ? out - c0 : kTile;
      const float* panel = panels + c0 * in;  // [in, kTile]
      for (int64_t r = 0; r < rows; ++r) cursor[r] = 0;
      for (int64_t s0 = 0; s0 < in; s0 += kSlab) {
        const int64_t s1 = s0 + kSlab;
        for (int64_t r = 0; r < rows; ++r) {
          const int32_t* row_idx = idx.data() + r * in;
          int64_t e = cursor[r];
          const int64_t first = e;
          while (e < count[r] && row_idx[e] < s1) ++e;
          cursor[r] = e;
          float* target = y + (b0 + r) * out + c0;
          if (e == first && s0 > 0) continue;  // nothing from this slab
          const float* init = s0 == 0 ? (bias ? bias + c0 : nullptr) : target;
          accumulate(e - first, row_idx + first, val.data() + r * in + first, ones, panel,
                     kTile, init, width, target);
        }
      }
    }
  }
}

// W [out, in] as panels of kTile outputs: panels[(c0 + ...) * in + k * kTile + c] =
// W[c0 + c, k] (zero beyond out), so that one input's weights for a tile are contiguous and a
// slab of inputs is one contiguous block (a power-of-two row stride would map a slab's rows to
// a few L1 cache sets).
void pack_panels(int64_t in, int64_t out, const float* w, float* panels, int64_t k0, int64_t k1) {
  for (int64_t c0 = 0; c0 < out; c0 += kTile) {
    float* panel = panels + c0 * in;
    for (int64_t k = k0; k < k1; ++k) {
      for (int64_t c = 0; c < kTile; ++c) {
        panel[k * kTile + c] = c0 + c < out ? w[(c0 + c) * in + k] : 0.0f;
      }
    }
  }
}

constexpr int64_t kGradSlab = 64;  // rows of x per slab of the weight gradient: 32 KiB of gy

// The nonzero entries of a slab of kGradSlab rows of x, by column (compressed sparse columns):
// entry e of column k is row first + row[e] with value val[e], e in [start[k], start[k + 1]).
struct ColumnSlab {
  std::vector<int32_t> start;
  std::vector<int32_t> row;
  std::vector<float> val;
  bool ones = true;
};

// Builds the column slab of rows [first, end) (idx, val: scratch of kGradSlab * in entries);
// returns whether a row without nonzero entries has a non-finite output gradient (a dense
// product's 0 * inf = NaN there would be missed).
bool build_slab(int64_t first, int64_t end, int64_t in, int64_t out, const float* x,
                const float* gy, int32_t* idx, float* val, ColumnSlab* slab) {
  const int64_t rows = end - first;
  int64_t count[kGradSlab];
  slab->start.assign(static_cast<size_t>(in + 1), 0);
  bool hidden_non_finite = false;
  for (int64_t r = 0; r < rows; ++r) {
    bool ones = true;
    count[r] = nonzeros(x + (first + r) * in, in, idx + r * in, val + r * in, &ones);
    slab->ones &= ones;
    for (int64_t e = 0; e < count[r]; ++e) ++slab->start[idx[r * in + e] + 1];
    if (count[r] == 0) {
      const float* g = gy + (first + r) * out;
      for (int64_t c = 0; c < out; ++c) hidden_non_finite |= !std::isfinite(g[c]);
    }
  }
  for (int64_t k = 0; k < in; ++k) slab->start[k + 1] += slab->start[k];
  const int64_t total = slab->start[in];
  slab->row.resize(static_cast<size_t>(total));
  if (!slab->ones) slab->val.resize(static_cast<size_t>(total));
  std::vector<int32_t> fill(slab->start.begin(), slab->start.end() - 1);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t e = 0; e < count[r]; ++e) {
      const int32_t k = idx[r * in + e];
      const int32_t at = fill[k]++;
      slab->row[at] = static_cast<int32_t>(r);
      if (!slab->ones) slab->val[at] = val[r * in + e];
    }
  }
  return hidden_non_finite;
}

// gwt[k, c0 + 0 .. width) for k in [k0, k1) from one column slab (rows first + ...). The
// slab's output-gradient rows for the tile are first copied into `rows` (kGradSlab x kTile floats,
// contiguous: they stay in L1). The first slab writes, later ones add their partial sums.
void weight_grad_tile(const ColumnSlab& slab, int64_t first, int64_t count, int64_t k0,
                      int64_t k1, int64_t c0, int64_t width, int64_t out, const float* gy,
                      float* gwt, bool initial, float* rows) {
  for (int64_t r = 0; r < count; ++r) {
    for (int64_t c = 0; c < width; ++c) rows[r * kTile + c] = gy[(first + r) * out + c0 + c];
  }
  for (int64_t k = k0; k < k1; ++k) {
    const int32_t begin = slab.start[k], end = slab.start[k + 1];
    float* target = gwt + k * out + c0;
    if (begin == end && !initial) continue;
    accumulate(end - begin, slab.row.data() + begin,
               slab.ones ? nullptr : slab.val.data() + begin, slab.ones, rows, kTile,
               initial ? nullptr : target, width, target);
  }
}

}  // namespace

// y = x W^T + b for rows of x; w [out, in] (the layout of torch.nn.Linear); bias may be null.
extern "C" void spike_linear_forward_f32(int64_t rows, int64_t in, int64_t out, const float* x,
                                         const float* w, const float* bias, float* y) {
  const int64_t tiles = (out + kTile - 1) / kTile;
  std::vector<float> panels(static_cast<size_t>(tiles * kTile * in));
  const int threads = spikeexp_kernel_threads(rows * in);
  const int64_t per_thread = (rows + threads - 1) / threads;
  const int64_t k_per_thread = (in + threads - 1) / threads;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
#pragma omp for schedule(static)
    for (int block = 0; block < threads; ++block) {
      const int64_t k0 = block * k_per_thread;
      const int64_t k1 = k0 + k_per_thread < in ? k0 + k_per_thread : in;
      if (k0 < k1) pack_panels(in, out, w, panels.data(), k0, k1);
    }
#pragma omp for schedule(static)
    for (int block = 0; block < threads; ++block) {
      const int64_t r0 = block * per_thread;
      const int64_t r1 = r0 + per_thread < rows ? r0 + per_thread : rows;
      if (r0 < r1) forward_rows(r0, r1, in, out, x, panels.data(), bias, y);
    }
  }
}

// gwt = (gy^T x)^T = x^T gy [in, out], the transposed weight gradient. Returns 1 if a row of x
// without nonzero entries has a non-finite gradient row (the caller then uses a dense product,
// whose 0 * inf = NaN this product skips), else 0.
extern "C" int spike_linear_weight_grad_f32(int64_t rows, int64_t in, int64_t out,
                                            const float* x, const float* gy, float* gwt) {
  const int64_t slabs = (rows + kGradSlab - 1) / kGradSlab;
  std::vector<ColumnSlab> columns(static_cast<size_t>(slabs));
  const int threads = spikeexp_kernel_threads(rows * in);
  int hidden_non_finite = 0;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(| : hidden_non_finite)
  {
    std::vector<int32_t> idx(static_cast<size_t>(kGradSlab * in + 16));
    std::vector<float> val(static_cast<size_t>(kGradSlab * in + 16));
#pragma omp for schedule(static)
    for (int64_t s = 0; s < slabs; ++s) {
      const int64_t first = s * kGradSlab;
      const int64_t end = first + kGradSlab < rows ? first + kGradSlab : rows;
      hidden_non_finite |=
          build_slab(first, end, in, out, x, gy, idx.data(), val.data(), &columns[s]) ? 1 : 0;
    }
  }
  // Work items: output tiles x ranges of inputs, enough for every thread; each thread keeps
  // the same items for every slab (static schedule), so no two threads touch one entry.
  const int64_t tiles = (out + kTile - 1) / kTile;
  const int64_t parts = tiles >= 2 * threads ? 1 : (2 * threads + tiles - 1) / tiles;
  const int64_t per_part = (in + parts - 1) / parts;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<float> rows_buffer(static_cast<size_t>(kGradSlab * kTile));
    for (int64_t s = 0; s < slabs; ++s) {
      const int64_t first = s * kGradSlab;
      const int64_t count = first + kGradSlab < rows ? kGradSlab : rows - first;
#pragma omp for schedule(static) nowait
      for (int64_t item = 0; item < tiles * parts; ++item) {
        const int64_t c0 = (item / parts) * kTile;
        const int64_t k0 = (item % parts) * per_part;
        const int64_t k1 = k0 + per_part < in ? k0 + per_part : in;
        const int64_t width = out - c0 < kTile ? out - c0 : kTile;
        weight_grad_tile(columns[s], first, count, k0, k1, c0, width, out, gy, gwt, s == 0,
                         rows_buffer.data());
      }
    }
  }
  return hidden_non_finite;
}
