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
//
// Python (fast.py, FastDecoder._native_step) hands each layer's tensors over as a dict keyed by the
// names in kLayerNames, read into a Layer once per job and checked there (an unknown name, a missing
// or misshapen tensor fails by name); a step then reads them from the Layers, as it read a list before.
#include <torch/extension.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <map>
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

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// One bundle of named tensors from Python: a dict of name -> tensor, None where the model has none.
// Read once, when a Step is built; a name step.cpp does not know fails there, by name (a misspelt
// name would otherwise leave a tensor unread and the step silently wrong).
class Named {
 public:
  Named(const pybind11::dict& d, const std::vector<std::string>& known, std::string what) : what_(std::move(what)) {
    for (auto item : d) {
      const auto key = pybind11::cast<std::string>(pybind11::str(item.first));
      TORCH_CHECK(std::find(known.begin(), known.end(), key) != known.end(), what_, ": unknown tensor '", key,
                  "' (step.cpp reads ", joined(known), ")");
      if (item.second.is_none()) continue;
      torch::Tensor t;
      try {
        t = pybind11::cast<torch::Tensor>(item.second);
      } catch (const pybind11::cast_error&) {
        TORCH_CHECK(false, what_, ": '", key, "' must be a tensor or None");
      }
      TORCH_CHECK(t.numel() == 0 || (t.is_contiguous() && t.scalar_type() == torch::kFloat32 && t.device().is_cpu()),
                  what_, ": '", key, "' must be a contiguous float32 CPU tensor");
      if (t.numel()) tensors_[key] = t;
    }
  }
  bool has(const std::string& key) const { return tensors_.count(key) > 0; }
  // the tensor, or an undefined one where the model has none
  torch::Tensor optional(const std::string& key, std::vector<int64_t> shape) const {
    auto it = tensors_.find(key);
    if (it == tensors_.end()) return {};
    expect(key, it->second, shape);
    return it->second;
  }
  torch::Tensor required(const std::string& key, std::vector<int64_t> shape) const {
    TORCH_CHECK(has(key), what_, ": '", key, "' is missing");
    return optional(key, std::move(shape));
  }
  // the size of a dimension of a tensor that must be there (to check the others against)
  int64_t size(const std::string& key, int64_t dim) const {
    TORCH_CHECK(has(key), what_, ": '", key, "' is missing");
    const auto& t = tensors_.at(key);
    TORCH_CHECK(t.dim() > dim, what_, ": '", key, "' has ", t.dim(), " dimensions, expected more than ", dim);
    return t.size(dim);
  }

 private:
  // a shape with -1 for "any size" (then at least 1)
  void expect(const std::string& key, const torch::Tensor& t, const std::vector<int64_t>& shape) const {
    bool ok = t.dim() == static_cast<int64_t>(shape.size());
    for (size_t i = 0; ok && i < shape.size(); i++) ok = shape[i] < 0 || t.size(i) == shape[i];
    TORCH_CHECK(ok, what_, ": '", key, "' has shape ", t.sizes(), ", expected ", c10::IntArrayRef(shape),
                " (-1: any)");
  }
  std::string what_;
  std::map<std::string, torch::Tensor> tensors_;
};

struct Linear {  // y = x @ weight^T + bias
  torch::Tensor weight, bias;
};
struct Norm {  // a layer norm's scale and shift
  torch::Tensor weight, bias;
};

// The names of a decoder layer's tensors. The model's own are named by their paths in transformers'
// MusicgenDecoderLayer (layer.get_submodule(path).weight); the rest are this job's, built by fast.py.
const std::vector<std::string> kLayerNames = {
    "self_attn_layer_norm.weight", "self_attn_layer_norm.bias",
    "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight", "self_attn.k_proj.bias",
    "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
    // the static key/value cache (rows, heads, length, head_dim), written in place at each step's position
    "self_attn.cache_keys", "self_attn.cache_values",
    // cross-attention (absent: none), of the live rows
    "encoder_attn_layer_norm.weight", "encoder_attn_layer_norm.bias",
    "encoder_attn.out_proj.bias",
    "encoder_attn.padding",   // (live, S): added to the scores, -inf at a live row's padded text positions
    "encoder_attn.constant",  // (rows - live, hidden): the output of the rows from live on, alike for any query
    // ... folded into the text (FastDecoder._fold): scores = h @ A + a0, out = softmax(scores) @ B + out bias
    "encoder_attn.folded_scores",       // A^T (live, heads * S, hidden)
    "encoder_attn.folded_scores_bias",  // a0 (live, heads * S)
    "encoder_attn.folded_values",       // B^T (live, hidden, heads * S)
    // ... or not: the q and out products around attention over the text's keys and values
    "encoder_attn.q_proj.weight", "encoder_attn.q_proj.bias", "encoder_attn.out_proj.weight",
    "encoder_attn.text_keys", "encoder_attn.text_values",  // (rows, heads, S, head_dim)
    "final_layer_norm.weight", "final_layer_norm.bias",
    "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
const std::vector<std::string> kParameterNames = {"weight", "bias"};

struct Layer {
  Norm self_norm;
  Linear q, k, v, out;
  torch::Tensor keys, values;
  bool cross = false, folded = false;
  Norm cross_norm;
  torch::Tensor cross_out_bias, padding, constant;
  torch::Tensor scores_t, scores0, values_t;  // folded
  Linear cross_q;                              // not folded, with cross_out_weight and the text's keys and values
  torch::Tensor cross_out_weight, text_keys, text_values;
  Norm ffn_norm;
  Linear fc1, fc2;

  // Layer `index`'s tensors, their shapes checked against each other and against rows, live and heads.
  Layer(const pybind11::dict& d, int64_t index, int64_t rows, int64_t live, int64_t heads) {
    const Named n(d, kLayerNames, "layer " + std::to_string(index));
    const int64_t D = n.size("self_attn.q_proj.weight", 1), F = n.size("fc1.weight", 0), hd = D / heads;
    TORCH_CHECK(hd * heads == D, "layer ", index, ": a width of ", D, " does not split into ", heads, " heads");
    self_norm = {n.optional("self_attn_layer_norm.weight", {D}), n.optional("self_attn_layer_norm.bias", {D})};
    q = {n.required("self_attn.q_proj.weight", {D, D}), n.optional("self_attn.q_proj.bias", {D})};
    k = {n.required("self_attn.k_proj.weight", {D, D}), n.optional("self_attn.k_proj.bias", {D})};
    v = {n.required("self_attn.v_proj.weight", {D, D}), n.optional("self_attn.v_proj.bias", {D})};
    out = {n.required("self_attn.out_proj.weight", {D, D}), n.optional("self_attn.out_proj.bias", {D})};
    keys = n.required("self_attn.cache_keys", {rows, heads, -1, hd});
    values = n.required("self_attn.cache_values", {rows, heads, keys.size(2), hd});
    folded = n.has("encoder_attn.folded_scores");
    cross = folded || n.has("encoder_attn.text_keys");
    if (cross) {
      cross_norm = {n.optional("encoder_attn_layer_norm.weight", {D}),
                    n.optional("encoder_attn_layer_norm.bias", {D})};
      cross_out_bias = n.optional("encoder_attn.out_proj.bias", {D});
      if (live < rows) constant = n.required("encoder_attn.constant", {rows - live, D});
      if (folded) {
        const int64_t hs = n.size("encoder_attn.folded_scores", 1);
        TORCH_CHECK(hs % heads == 0, "layer ", index, ": folded scores of ", hs, " columns for ", heads, " heads");
        scores_t = n.required("encoder_attn.folded_scores", {live, hs, D});
        scores0 = n.required("encoder_attn.folded_scores_bias", {live, hs});
        values_t = n.required("encoder_attn.folded_values", {live, D, hs});
        padding = n.optional("encoder_attn.padding", {live, hs / heads});
      } else {
        cross_q = {n.required("encoder_attn.q_proj.weight", {D, D}), n.optional("encoder_attn.q_proj.bias", {D})};
        cross_out_weight = n.required("encoder_attn.out_proj.weight", {D, D});
        text_keys = n.required("encoder_attn.text_keys", {rows, heads, -1, hd});
        text_values = n.required("encoder_attn.text_values", {rows, heads, text_keys.size(2), hd});
        padding = n.optional("encoder_attn.padding", {live, text_keys.size(2)});
      }
    }
    ffn_norm = {n.optional("final_layer_norm.weight", {D}), n.optional("final_layer_norm.bias", {D})};
    fc1 = {n.required("fc1.weight", {F, D}), n.optional("fc1.bias", {F})};
    fc2 = {n.required("fc2.weight", {D, F}), n.optional("fc2.bias", {D})};
  }
};

}  // namespace

// One decoding step of `rows` rows through the decoder's layers, the final norm and the K codebook
// heads, with the layers' tensors passed by name (kLayerNames; see fast.py's FastDecoder._native_step).
class Step {
 public:
  Step(const std::vector<pybind11::dict>& layers, const pybind11::dict& norm, const std::vector<pybind11::dict>& heads,
       int64_t attention_heads, int64_t rows, int64_t live, double eps, double self_scale, double cross_scale)
      : heads_(attention_heads), rows_(rows), live_(live), eps_(static_cast<float>(eps)),
        scale_(static_cast<float>(self_scale)), cross_scale_(static_cast<float>(cross_scale)) {
    TORCH_CHECK(!layers.empty() && !heads.empty(), "a step needs at least one layer and one codebook head");
    TORCH_CHECK(attention_heads > 0 && rows > 0 && live > 0 && live <= rows, "attention_heads ", attention_heads,
                ", rows ", rows, ", live ", live, ": expected 0 < live <= rows and attention_heads > 0");
    for (size_t i = 0; i < layers.size(); i++) layers_.emplace_back(layers[i], i, rows, live, attention_heads);
    const Layer& first = layers_.front();
    hidden_ = first.q.weight.size(1);
    hd_ = hidden_ / heads_;
    ffn_ = first.fc1.weight.size(0);
    length_ = first.keys.size(2);
    cross_ = first.cross;
    folded_ = first.folded;
    hs_ = !cross_ ? 0 : folded_ ? first.scores_t.size(1) : heads_ * first.text_keys.size(2);
    for (size_t i = 0; i < layers_.size(); i++) {
      const Layer& l = layers_[i];
      TORCH_CHECK(l.q.weight.size(1) == hidden_ && l.fc1.weight.size(0) == ffn_ && l.keys.size(2) == length_ &&
                      l.cross == cross_ && l.folded == folded_ &&
                      (!cross_ || (folded_ ? l.scores_t.size(1) : heads_ * l.text_keys.size(2)) == hs_),
                  "layer ", i, " differs from layer 0 in its sizes or its form of cross-attention");
    }
    const Named n(norm, kParameterNames, "final norm");
    norm_ = {n.optional("weight", {hidden_}), n.optional("bias", {hidden_})};
    for (size_t k = 0; k < heads.size(); k++) {
      const Named h(heads[k], kParameterNames, "codebook head " + std::to_string(k));
      const int64_t vocab = h.size("weight", 0);
      TORCH_CHECK(k == 0 || vocab == vocab_, "codebook head ", k, " has ", vocab, " tokens, head 0 ", vocab_);
      vocab_ = vocab;
      lm_heads_.push_back({h.required("weight", {vocab, hidden_}), h.optional("bias", {vocab})});
    }
  }

  torch::Tensor step(torch::Tensor x_in, int64_t pos) {
    TORCH_CHECK(pos >= 0 && pos < length_, "position ", pos, " outside the cache of ", length_);
    TORCH_CHECK(x_in.is_contiguous() && x_in.scalar_type() == torch::kFloat32 && x_in.device().is_cpu(),
                "x must be a contiguous float32 CPU tensor");
    TORCH_CHECK(x_in.numel() == rows_ * hidden_, "x must hold rows * hidden numbers");
    const int64_t R = rows_, D = hidden_, H = heads_, hd = hd_, L = pos + 1;
    const int64_t codebooks = static_cast<int64_t>(lm_heads_.size());
    auto opts = torch::TensorOptions().dtype(torch::kFloat32);
    torch::Tensor xt = x_in.reshape({R, D}).clone();
    float* x = xt.data_ptr<float>();
    std::vector<float> h(R * D), q(R * D), a(R * D), tmp(R * std::max(D, ffn_)), f(R * ffn_);
    std::vector<float> sc(std::max<int64_t>(hs_, 1) * std::max<int64_t>(live_, 1));
    for (const Layer& p : layers_) {
      // self-attention
      layer_norm(x, ptr(p.self_norm.weight), ptr(p.self_norm.bias), eps_, h.data(), R, D);
      float* kc = p.keys.data_ptr<float>();
      float* vc = p.values.data_ptr<float>();
      gemv(h.data(), D, ptr(p.q.weight), ptr(p.q.bias), q.data(), D, R, D, D);
      gemv(h.data(), D, ptr(p.k.weight), ptr(p.k.bias), tmp.data(), D, R, D, D);
      for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < H; j++)
          std::copy_n(&tmp[r * D + j * hd], hd, kc + ((r * H + j) * length_ + pos) * hd);
      gemv(h.data(), D, ptr(p.v.weight), ptr(p.v.bias), tmp.data(), D, R, D, D);
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
      gemv(a.data(), D, ptr(p.out.weight), ptr(p.out.bias), tmp.data(), D, R, D, D);
      for (int64_t i = 0; i < R * D; i++) x[i] += tmp[i];
      // cross-attention of the live rows: folded into the text's keys and values (see fast.py),
      // or the q and out products around attention over the text; the other rows add a constant
      if (cross_) {
        layer_norm(x, ptr(p.cross_norm.weight), ptr(p.cross_norm.bias), eps_, h.data(), live_, D);
        const int64_t S = hs_ / H;
        const float* mask = ptr(p.padding);
        if (folded_) {
          const float* At = p.scores_t.data_ptr<float>();
          const float* a0 = p.scores0.data_ptr<float>();
          const float* Bt = p.values_t.data_ptr<float>();
          for (int64_t r = 0; r < live_; r++) {
            float* s = &sc[r * hs_];
            gemv(&h[r * D], D, At + r * hs_ * D, a0 + r * hs_, s, hs_, 1, hs_, D);
            if (mask)
              for (int64_t j = 0; j < H; j++)
                for (int64_t t = 0; t < S; t++) s[j * S + t] += mask[r * S + t];
            for (int64_t j = 0; j < H; j++) softmax_inplace(s + j * S, S);
            gemv(s, hs_, Bt + r * D * hs_, ptr(p.cross_out_bias), &tmp[r * D], D, 1, D, hs_);
          }
        } else {
          const float* ck = p.text_keys.data_ptr<float>();
          const float* cv = p.text_values.data_ptr<float>();
          const float cscale = cross_scale_;
          gemv(h.data(), D, ptr(p.cross_q.weight), ptr(p.cross_q.bias), q.data(), D, live_, D, D);
#pragma omp parallel for schedule(static)
          for (int64_t rj = 0; rj < live_ * H; rj++) {
            const int64_t r = rj / H, j = rj % H;
            attend(&q[r * D + j * hd], ck + rj * S * hd, cv + rj * S * hd, S, hd, cscale, &sc[rj * S],
                   &a[r * D + j * hd], mask ? mask + r * S : nullptr);
          }
          gemv(a.data(), D, ptr(p.cross_out_weight), ptr(p.cross_out_bias), tmp.data(), D, live_, D, D);
        }
        for (int64_t i = 0; i < live_ * D; i++) x[i] += tmp[i];
        if (live_ < R) {
          const float* c = p.constant.data_ptr<float>();
          for (int64_t i = 0; i < (R - live_) * D; i++) x[live_ * D + i] += c[i];
        }
      }
      // feed-forward
      layer_norm(x, ptr(p.ffn_norm.weight), ptr(p.ffn_norm.bias), eps_, h.data(), R, D);
      gemv(h.data(), D, ptr(p.fc1.weight), ptr(p.fc1.bias), f.data(), ffn_, R, ffn_, D);
      gelu(f.data(), R * ffn_);
      gemv(f.data(), ffn_, ptr(p.fc2.weight), ptr(p.fc2.bias), tmp.data(), D, R, D, ffn_);
      for (int64_t i = 0; i < R * D; i++) x[i] += tmp[i];
    }
    layer_norm(x, ptr(norm_.weight), ptr(norm_.bias), eps_, h.data(), R, D);
    torch::Tensor logits = torch::empty({R, codebooks, vocab_}, opts);
    float* lg = logits.data_ptr<float>();
    for (int64_t k = 0; k < codebooks; k++)
      gemv(h.data(), D, ptr(lm_heads_[k].weight), ptr(lm_heads_[k].bias), lg + k * vocab_, codebooks * vocab_, R,
           vocab_, D);
    return logits;
  }

 private:
  std::vector<Layer> layers_;
  Norm norm_;
  std::vector<Linear> lm_heads_;
  int64_t heads_, rows_, live_;
  bool cross_ = false, folded_ = false;
  float eps_, scale_, cross_scale_;
  int64_t hidden_ = 0, hd_ = 0, ffn_ = 0, length_ = 0, hs_ = 0, vocab_ = 0;
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
      .def(pybind11::init<const std::vector<pybind11::dict>&, const pybind11::dict&, const std::vector<pybind11::dict>&,
                          int64_t, int64_t, int64_t, double, double, double>(),
           pybind11::arg("layers"), pybind11::arg("norm"), pybind11::arg("heads"), pybind11::kw_only(),
           pybind11::arg("attention_heads"), pybind11::arg("rows"), pybind11::arg("live"), pybind11::arg("eps"),
           pybind11::arg("self_scale"), pybind11::arg("cross_scale"))
      .def("step", &Step::step, pybind11::call_guard<pybind11::gil_scoped_release>());
}
