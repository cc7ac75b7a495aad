// One MusicGen decoding step for a few rows, compiled (kernels=native; see __init__.py).
//
// A step at batch 1 reads the whole decoder from memory once and does little
// arithmetic, so its time is the time memory takes to deliver the weights plus
// whatever runs between the products. This file runs the whole step in one
// call: products as matrix-vector passes over each weight (each thread reading
// up to eight long sequential streams with software prefetch, AVX-512 or AVX2
// where the CPU has it), and the layer norms, GELU, attention over the
// key/value cache and the cross-attention in plain loops, with no Python or
// dispatcher work between them. The arithmetic is MusicGen's in another summation order: logits agree
// with transformers' to about 1e-6, not bit for bit.
#include <torch/extension.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace {

// The few vector operations the products use, for the widest instruction set the build has
// (the two definitions are alike on purpose: one product loop serves both).
#if defined(__AVX512F__)
struct Vec {  // 16 floats, 32 registers
  using T = __m512;
  static constexpr int kWidth = 16, kRegisters = 32;
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static float sum(T a) { return _mm512_reduce_add_ps(a); }
};
#elif defined(__AVX2__) && defined(__FMA__)
struct Vec {  // 8 floats, 16 registers
  using T = __m256;
  static constexpr int kWidth = 8, kRegisters = 16;
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static float sum(T a) {
    alignas(32) float l[8];
    _mm256_store_ps(l, a);
    return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
  }
};
#endif

// Measured on a 2-core Xeon (musicgen-small, 2 rows): each thread reading 8 long streams (8
// stretches of its rows, each walked row after row) with a prefetch 128 floats ahead moved 30 GB/s,
// against 28 for 8 neighbouring rows at a time and 24 for a weight repacked into one stream; a
// non-temporal hint halved the speed.
constexpr int64_t kPrefetch = 128;  // floats ahead of the rows being read

// Streams each thread reads side by side: as many as keep the accumulators (streams x inputs) in
// registers with room for the loads.
template <int M>
constexpr int streams() {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  constexpr int n = (Vec::kRegisters - 4) / M;
  return n >= 8 ? 8 : n >= 4 ? 4 : n >= 2 ? 2 : 1;
#else
  return 1;
#endif
}

// y[m, n] = sum_k x[m, k] * w[n, k] + b[n] for m < M (x, y row strides ldx, ldy), for the rows n of
// [n0, n1) that are n0 + s * len + i (s < streams, i < len): stream s walks its own stretch of
// rows, which lie one after another in memory, so each stream is one long sequential read.
template <int M>
void gemv_streams(const float* x, int64_t ldx, const float* w, const float* b, float* y, int64_t ldy, int64_t K,
                  int64_t n0, int64_t n1) {
  int64_t done = n0;
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  constexpr int S = streams<M>(), W = Vec::kWidth;
  const int64_t len = (n1 - n0) / S, KW = K - K % W;
  for (int64_t i = 0; i < len; i++) {
    typename Vec::T acc[S][M];
    const float* row[S];
    for (int s = 0; s < S; s++) {
      row[s] = w + (n0 + s * len + i) * K;
      for (int m = 0; m < M; m++) acc[s][m] = Vec::zero();
    }
    for (int64_t k = 0; k < KW; k += W) {
      for (int s = 0; s < S; s++) {
        if (k % 16 == 0) _mm_prefetch(reinterpret_cast<const char*>(row[s] + k + kPrefetch), _MM_HINT_T0);
        const typename Vec::T wv = Vec::load(row[s] + k);
        for (int m = 0; m < M; m++) acc[s][m] = Vec::fma(wv, Vec::load(x + m * ldx + k), acc[s][m]);
      }
    }
    for (int s = 0; s < S; s++) {
      const int64_t n = n0 + s * len + i;
      for (int m = 0; m < M; m++) {
        float v = Vec::sum(acc[s][m]);
        for (int64_t k = KW; k < K; k++) v += row[s][k] * x[m * ldx + k];
        y[m * ldy + n] = v + (b ? b[n] : 0.f);
      }
    }
  }
  done = n0 + S * len;
#endif
  for (int64_t n = done; n < n1; n++) {
    const float* wr = w + n * K;
    for (int m = 0; m < M; m++) {
      float v = 0.f;
#pragma omp simd reduction(+ : v)
      for (int64_t k = 0; k < K; k++) v += wr[k] * x[m * ldx + k];
      y[m * ldy + n] = v + (b ? b[n] : 0.f);
    }
  }
}

template <int M>
void gemv_m(const float* x, int64_t ldx, const float* w, const float* b, float* y, int64_t ldy, int64_t N,
            int64_t K) {
#pragma omp parallel
  {  // each thread its own contiguous share of the rows
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    gemv_streams<M>(x, ldx, w, b, y, ldy, K, N * t / nt, N * (t + 1) / nt);
  }
}

// y (rows, N) = x (rows, K) @ w (N, K)^T + b, for any number of rows (eight per pass over w).
void gemv(const float* x, int64_t ldx, const float* w, const float* b, float* y, int64_t ldy, int64_t rows,
          int64_t N, int64_t K) {
  for (int64_t r = 0; r < rows; r += 8) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    switch (std::min<int64_t>(8, rows - r)) {
      case 1: gemv_m<1>(xr, ldx, w, b, yr, ldy, N, K); break;
      case 2: gemv_m<2>(xr, ldx, w, b, yr, ldy, N, K); break;
      case 3: gemv_m<3>(xr, ldx, w, b, yr, ldy, N, K); break;
      case 4: gemv_m<4>(xr, ldx, w, b, yr, ldy, N, K); break;
      case 5: gemv_m<5>(xr, ldx, w, b, yr, ldy, N, K); break;
      case 6: gemv_m<6>(xr, ldx, w, b, yr, ldy, N, K); break;
      case 7: gemv_m<7>(xr, ldx, w, b, yr, ldy, N, K); break;
      default: gemv_m<8>(xr, ldx, w, b, yr, ldy, N, K); break;
    }
  }
}

void layer_norm(const float* x, const float* g, const float* b, float eps, float* y, int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < D; i++) mean += xr[i];
    mean /= D;
    for (int64_t i = 0; i < D; i++) var += (xr[i] - mean) * (xr[i] - mean);
    const float inv = 1.0f / std::sqrt(static_cast<float>(var / D) + eps);
    for (int64_t i = 0; i < D; i++)
      yr[i] = (xr[i] - static_cast<float>(mean)) * inv * (g ? g[i] : 1.f) + (b ? b[i] : 0.f);
  }
}

// x = GELU(x), erf form, shared by the threads (glibc's vector erf needs -ffast-math, which would
// also license reordering the sums; scalar erff costs about half a millisecond a step).
void gelu(float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.f + std::erf(x[i] * 0.70710678118654752f));
}

void softmax_inplace(float* s, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; i++) mx = std::max(mx, s[i]);
  float sum = 0.f;
  for (int64_t i = 0; i < n; i++) {
    s[i] = std::exp(s[i] - mx);
    sum += s[i];
  }
  const float inv = 1.f / sum;
  for (int64_t i = 0; i < n; i++) s[i] *= inv;
}

// One query against L keys and values of one head: out (hd) = softmax(q . k_t * scale + add_t) @ v,
// with add (L numbers, e.g. -inf at padding) optional.
void attend(const float* qv, const float* kb, const float* vb, int64_t L, int64_t hd, float scale, float* s,
            float* out, const float* add = nullptr) {
#if defined(__AVX512F__)
  if (hd == 64) {  // every MusicGen size: the query and the output stay in four registers
    const __m512 q0 = _mm512_loadu_ps(qv), q1 = _mm512_loadu_ps(qv + 16), q2 = _mm512_loadu_ps(qv + 32),
                 q3 = _mm512_loadu_ps(qv + 48);
    for (int64_t t = 0; t < L; t++) {
      const float* k = kb + t * 64;
      __m512 acc = _mm512_mul_ps(q0, _mm512_loadu_ps(k));
      acc = _mm512_fmadd_ps(q1, _mm512_loadu_ps(k + 16), acc);
      acc = _mm512_fmadd_ps(q2, _mm512_loadu_ps(k + 32), acc);
      acc = _mm512_fmadd_ps(q3, _mm512_loadu_ps(k + 48), acc);
      s[t] = _mm512_reduce_add_ps(acc) * scale + (add ? add[t] : 0.f);
    }
    softmax_inplace(s, L);
    __m512 o0 = _mm512_setzero_ps(), o1 = _mm512_setzero_ps(), o2 = _mm512_setzero_ps(), o3 = _mm512_setzero_ps();
    for (int64_t t = 0; t < L; t++) {
      const float* v = vb + t * 64;
      const __m512 w = _mm512_set1_ps(s[t]);
      o0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(v), o0);
      o1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(v + 16), o1);
      o2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(v + 32), o2);
      o3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(v + 48), o3);
    }
    _mm512_storeu_ps(out, o0);
    _mm512_storeu_ps(out + 16, o1);
    _mm512_storeu_ps(out + 32, o2);
    _mm512_storeu_ps(out + 48, o3);
    return;
  }
#endif
  for (int64_t t = 0; t < L; t++) {
    float d = 0.f;
#pragma omp simd reduction(+ : d)
    for (int64_t i = 0; i < hd; i++) d += qv[i] * kb[t * hd + i];
    s[t] = d * scale + (add ? add[t] : 0.f);
  }
  softmax_inplace(s, L);
  for (int64_t i = 0; i < hd; i++) out[i] = 0.f;
  for (int64_t t = 0; t < L; t++) {
    const float w = s[t];
#pragma omp simd
    for (int64_t i = 0; i < hd; i++) out[i] += w * vb[t * hd + i];
  }
}

const float* ptr(const torch::Tensor& t) { return t.defined() && t.numel() ? t.data_ptr<float>() : nullptr; }

void check(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(!t.defined() || t.numel() == 0 || (t.is_contiguous() && t.scalar_type() == torch::kFloat32 &&
                                                  t.device().is_cpu()),
              what, " must be a contiguous float32 CPU tensor");
}

}  // namespace

// Per layer, in this order (an undefined or empty tensor where the model has none):
//  0 ln1 weight, 1 ln1 bias, 2 q weight, 3 q bias, 4 k weight, 5 k bias, 6 v weight, 7 v bias,
//  8 out weight, 9 out bias, 10 key cache (rows, heads, L, hd), 11 value cache,
//  12 cross ln weight, 13 cross ln bias, 14 At (live, heads*S, hidden), 15 a0 (live, heads*S),
//  16 additive mask of the live rows' padding (live, S), 17 Bt (live, hidden, heads*S), 18 cross out bias,
//  19 constant cross output of rows live.. (rows - live, hidden),
//  20 ffn ln weight, 21 ffn ln bias, 22 fc1 weight, 23 fc1 bias, 24 fc2 weight, 25 fc2 bias,
//  and for a cross-attention that is not folded (14-17 empty): 26 q weight, 27 q bias,
//  28 text keys (rows, heads, S, hd), 29 text values, 30 out weight.
// Then the final norm's weight and bias, then the K codebook heads (weight, bias) pairs.
constexpr int kPerLayer = 31;

class Step {
 public:
  Step(std::vector<torch::Tensor> t, int64_t layers, int64_t heads, int64_t rows, int64_t live, bool cross,
       double eps, double self_scale, double cross_scale)
      : t_(std::move(t)), layers_(layers), heads_(heads), rows_(rows), live_(live), cross_(cross),
        eps_(static_cast<float>(eps)), scale_(static_cast<float>(self_scale)),
        cross_scale_(static_cast<float>(cross_scale)) {
    TORCH_CHECK(static_cast<int64_t>(t_.size()) >= layers * kPerLayer + 4, "too few tensors");
    for (auto& x : t_) check(x, "every tensor");
    hidden_ = t_[2].size(1);
    hd_ = hidden_ / heads_;
    ffn_ = t_[22].size(0);
    length_ = t_[10].size(2);
    folded_ = cross_ && t_[14].numel() > 0;
    hs_ = !cross_ ? 0 : folded_ ? t_[14].size(1) : heads_ * t_[28].size(2);
    const int64_t base = layers_ * kPerLayer + 2;
    codebooks_ = (static_cast<int64_t>(t_.size()) - base) / 2;
    vocab_ = t_[base].size(0);
  }

  torch::Tensor step(torch::Tensor x_in, int64_t pos) {
    TORCH_CHECK(pos >= 0 && pos < length_, "position ", pos, " outside the cache of ", length_);
    check(x_in, "x");
    TORCH_CHECK(x_in.numel() == rows_ * hidden_, "x must hold rows * hidden numbers");
    const int64_t R = rows_, D = hidden_, H = heads_, hd = hd_, L = pos + 1;
    auto opts = torch::TensorOptions().dtype(torch::kFloat32);
    torch::Tensor xt = x_in.reshape({R, D}).clone();
    float* x = xt.data_ptr<float>();
    std::vector<float> h(R * D), q(R * D), a(R * D), tmp(R * std::max(D, ffn_)), f(R * ffn_);
    std::vector<float> sc(std::max<int64_t>(hs_, 1) * std::max<int64_t>(live_, 1));
    for (int64_t l = 0; l < layers_; l++) {
      const torch::Tensor* p = &t_[l * kPerLayer];
      // self-attention
      layer_norm(x, ptr(p[0]), ptr(p[1]), eps_, h.data(), R, D);
      float* kc = p[10].data_ptr<float>();
      float* vc = p[11].data_ptr<float>();
      gemv(h.data(), D, ptr(p[2]), ptr(p[3]), q.data(), D, R, D, D);
      gemv(h.data(), D, ptr(p[4]), ptr(p[5]), tmp.data(), D, R, D, D);
      for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < H; j++)
          std::copy_n(&tmp[r * D + j * hd], hd, kc + ((r * H + j) * length_ + pos) * hd);
      gemv(h.data(), D, ptr(p[6]), ptr(p[7]), tmp.data(), D, R, D, D);
      for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < H; j++)
          std::copy_n(&tmp[r * D + j * hd], hd, vc + ((r * H + j) * length_ + pos) * hd);
#pragma omp parallel
      {
        std::vector<float> s(L);
#pragma omp for schedule(static)
        for (int64_t rj = 0; rj < R * H; rj++) {
          const int64_t r = rj / H, j = rj % H;
          attend(&q[r * D + j * hd], kc + (rj * length_) * hd, vc + (rj * length_) * hd, L, hd, scale_, s.data(),
                 &a[r * D + j * hd]);
        }
      }
      gemv(a.data(), D, ptr(p[8]), ptr(p[9]), tmp.data(), D, R, D, D);
      for (int64_t i = 0; i < R * D; i++) x[i] += tmp[i];
      // cross-attention of the live rows: folded into the text's keys and values (see fast.py),
      // or the q and out products around attention over the text; the other rows add a constant
      if (cross_) {
        layer_norm(x, ptr(p[12]), ptr(p[13]), eps_, h.data(), live_, D);
        const int64_t S = hs_ / H;
        if (folded_) {
          const float* At = p[14].data_ptr<float>();
          const float* a0 = p[15].data_ptr<float>();
          const float* mask = ptr(p[16]);
          const float* Bt = p[17].data_ptr<float>();
          for (int64_t r = 0; r < live_; r++) {
            float* s = &sc[r * hs_];
            gemv(&h[r * D], D, At + r * hs_ * D, a0 + r * hs_, s, hs_, 1, hs_, D);
            if (mask)
              for (int64_t j = 0; j < H; j++)
                for (int64_t t = 0; t < S; t++) s[j * S + t] += mask[r * S + t];
            for (int64_t j = 0; j < H; j++) softmax_inplace(s + j * S, S);
            gemv(s, hs_, Bt + r * D * hs_, ptr(p[18]), &tmp[r * D], D, 1, D, hs_);
          }
        } else {
          const float* ck = p[28].data_ptr<float>();
          const float* cv = p[29].data_ptr<float>();
          const float* mask = ptr(p[16]);
          const float cscale = cross_scale_;
          gemv(h.data(), D, ptr(p[26]), ptr(p[27]), q.data(), D, live_, D, D);
#pragma omp parallel for schedule(static)
          for (int64_t rj = 0; rj < live_ * H; rj++) {
            const int64_t r = rj / H, j = rj % H;
            attend(&q[r * D + j * hd], ck + rj * S * hd, cv + rj * S * hd, S, hd, cscale, &sc[rj * S],
                   &a[r * D + j * hd], mask ? mask + r * S : nullptr);
          }
          gemv(a.data(), D, ptr(p[30]), ptr(p[18]), tmp.data(), D, live_, D, D);
        }
        for (int64_t i = 0; i < live_ * D; i++) x[i] += tmp[i];
        if (live_ < R) {
          const float* c = p[19].data_ptr<float>();
          for (int64_t i = 0; i < (R - live_) * D; i++) x[live_ * D + i] += c[i];
        }
      }
      // feed-forward
      layer_norm(x, ptr(p[20]), ptr(p[21]), eps_, h.data(), R, D);
      gemv(h.data(), D, ptr(p[22]), ptr(p[23]), f.data(), ffn_, R, ffn_, D);
      gelu(f.data(), R * ffn_);
      gemv(f.data(), ffn_, ptr(p[24]), ptr(p[25]), tmp.data(), D, R, D, ffn_);
      for (int64_t i = 0; i < R * D; i++) x[i] += tmp[i];
    }
    const int64_t base = layers_ * kPerLayer;
    layer_norm(x, ptr(t_[base]), ptr(t_[base + 1]), eps_, h.data(), R, D);
    torch::Tensor logits = torch::empty({R, codebooks_, vocab_}, opts);
    float* lg = logits.data_ptr<float>();
    for (int64_t k = 0; k < codebooks_; k++)
      gemv(h.data(), D, ptr(t_[base + 2 + 2 * k]), ptr(t_[base + 3 + 2 * k]), lg + k * vocab_,
           codebooks_ * vocab_, R, vocab_, D);
    return logits;
  }

 private:
  std::vector<torch::Tensor> t_;
  int64_t layers_, heads_, rows_, live_;
  bool cross_, folded_ = false;
  float eps_, scale_, cross_scale_;
  int64_t hidden_ = 0, hd_ = 0, ffn_ = 0, length_ = 0, hs_ = 0, codebooks_ = 0, vocab_ = 0;
};

// The vector instructions the products were built with ("" = none: then they are slower than MKL's).
std::string simd() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2";
#else
  return "";
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("simd", &simd);
  pybind11::class_<Step>(m, "Step", pybind11::module_local())
      .def(pybind11::init<std::vector<torch::Tensor>, int64_t, int64_t, int64_t, int64_t, bool, double, double,
                          double>())
      .def("step", &Step::step, pybind11::call_guard<pybind11::gil_scoped_release>());
}
