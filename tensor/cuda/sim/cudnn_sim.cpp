// The SIMT simulator's cuDNN: 2-D convolutions (forward, backward data, backward filter) computed
// on the host (device memory is host memory) in double and rounded to the tensors' type, validated
// like the real library and queued on the handle's stream (okd::sim::enqueue). Every argument is
// captured by value, descriptors included, so that a convolution recorded during graph capture
// runs correctly on each replay after okd has destroyed its descriptors.
//
// Algorithms: each direction offers a few that all compute the same exact result; the heuristics
// rank them like cuDNN would (some need a workspace, some are non-deterministic, as in the real
// library) and report the others as CUDNN_STATUS_NOT_SUPPORTED. A compute call with an algorithm
// that needs a workspace checks that one of at least that size is passed. The Find calls (timed
// choice) run every algorithm and rank them by a fixed fake time (fake_time_ms).
#include <cudnn.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/cuda/sim/sim.h"

struct cudnnContext {
  cudaStream_t stream = nullptr;
};

struct cudnnTensorStruct {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int dim[4] = {0, 0, 0, 0};           // n, c, h, w
  long long stride[4] = {0, 0, 0, 0};  // in elements
};

struct cudnnFilterStruct {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;  // KCRS or KRSC
  int k = 0, c = 0, r = 0, s = 0;                  // c: input channels per group
};

struct cudnnConvolutionStruct {
  bool set = false;
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  int groups = 1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

bool valid_type(cudnnDataType_t t) {
  switch (t) {
    case CUDNN_DATA_FLOAT:
    case CUDNN_DATA_DOUBLE:
    case CUDNN_DATA_HALF:
    case CUDNN_DATA_INT8:
    case CUDNN_DATA_INT32:
    case CUDNN_DATA_UINT8:
    case CUDNN_DATA_BFLOAT16:
      return true;
  }
  return false;
}

size_t elem_size(cudnnDataType_t t) {
  return t == CUDNN_DATA_DOUBLE ? 8 : t == CUDNN_DATA_FLOAT ? 4 : 2;
}

double load(const void* p, cudnnDataType_t t, long long i) {
  if (t == CUDNN_DATA_FLOAT) return static_cast<const float*>(p)[i];
  if (t == CUDNN_DATA_DOUBLE) return static_cast<const double*>(p)[i];
  return okd::bf16::to_float(static_cast<const uint16_t*>(p)[i]);
}

void store(void* p, cudnnDataType_t t, long long i, double v) {
  if (t == CUDNN_DATA_FLOAT)
    static_cast<float*>(p)[i] = static_cast<float>(v);
  else if (t == CUDNN_DATA_DOUBLE)
    static_cast<double*>(p)[i] = v;
  else
    static_cast<uint16_t*>(p)[i] = okd::bf16::from_float(static_cast<float>(v));
}

// cudnnGetConvolution2dForwardOutputDim's formula; <= 0 when the dilated filter does not fit.
int out_size(int in, int pad, int filter, int dil, int stride) {
  const long long span = static_cast<long long>(filter - 1) * dil + 1;
  const long long room = static_cast<long long>(in) + 2LL * pad - span;
  return room < 0 ? 0 : static_cast<int>(room / stride + 1);
}

// A validated convolution problem, by value: x [N,C,H,W] * w [K,Cg,R,S] -> y [N,K,P,Q].
struct Problem {
  cudnnTensorStruct x, y;
  cudnnFilterStruct w;
  cudnnConvolutionStruct conv;
  int N = 0, C = 0, H = 0, W = 0, K = 0, Cg = 0, Kg = 0, G = 1, R = 0, S = 0, P = 0, Q = 0;

  // The filter element (k, c, r, s) as the correlation sees it (flipped for CUDNN_CONVOLUTION).
  long long filter_index(int k, int c, int r, int s) const {
    if (conv.mode == CUDNN_CONVOLUTION) r = R - 1 - r, s = S - 1 - s;
    if (w.format == CUDNN_TENSOR_NHWC)
      return ((static_cast<long long>(k) * R + r) * S + s) * Cg + c;
    return ((static_cast<long long>(k) * Cg + c) * R + r) * S + s;
  }
  std::vector<double> load_tensor(const cudnnTensorStruct& d, const void* p) const {
    std::vector<double> v(static_cast<size_t>(d.dim[0]) * d.dim[1] * d.dim[2] * d.dim[3]);
    size_t i = 0;
    for (int n = 0; n < d.dim[0]; ++n)
      for (int c = 0; c < d.dim[1]; ++c)
        for (int h = 0; h < d.dim[2]; ++h)
          for (int ww = 0; ww < d.dim[3]; ++ww)
            v[i++] = load(p, d.type,
                          n * d.stride[0] + c * d.stride[1] + h * d.stride[2] + ww * d.stride[3]);
    return v;
  }
  // dst = alpha acc + beta dst; dst is not read when beta is 0.
  void store_tensor(const cudnnTensorStruct& d, void* p, const std::vector<double>& acc,
                    double alpha, double beta) const {
    size_t i = 0;
    for (int n = 0; n < d.dim[0]; ++n)
      for (int c = 0; c < d.dim[1]; ++c)
        for (int h = 0; h < d.dim[2]; ++h)
          for (int ww = 0; ww < d.dim[3]; ++ww) {
            const long long o =
                n * d.stride[0] + c * d.stride[1] + h * d.stride[2] + ww * d.stride[3];
            double v = alpha * acc[i++];
            if (beta != 0) v += beta * load(p, d.type, o);
            store(p, d.type, o, v);
          }
  }
  std::vector<double> load_filter(const void* p) const {  // [K][Cg][R][S], correlation order
    std::vector<double> v(static_cast<size_t>(K) * Cg * R * S);
    size_t i = 0;
    for (int k = 0; k < K; ++k)
      for (int c = 0; c < Cg; ++c)
        for (int r = 0; r < R; ++r)
          for (int s = 0; s < S; ++s) v[i++] = load(p, w.type, filter_index(k, c, r, s));
    return v;
  }
  void store_filter(void* p, const std::vector<double>& acc, double alpha, double beta) const {
    size_t i = 0;
    for (int k = 0; k < K; ++k)
      for (int c = 0; c < Cg; ++c)
        for (int r = 0; r < R; ++r)
          for (int s = 0; s < S; ++s) {
            const long long o = filter_index(k, c, r, s);
            double v = alpha * acc[i++];
            if (beta != 0) v += beta * load(p, w.type, o);
            store(p, w.type, o, v);
          }
  }

  // Calls f(x index, y index, filter index) for every (input, output, tap) triple the
  // correlation pairs, in canonical packed NCHW / KCRS order; the three directions share it.
  template <class F>
  void for_each_tap(F f) const {
    for (int n = 0; n < N; ++n)
      for (int g = 0; g < G; ++g)
        for (int kk = 0; kk < Kg; ++kk) {
          const int k = g * Kg + kk;
          for (int c = 0; c < Cg; ++c) {
            const int ci = g * Cg + c;
            const size_t xplane = (static_cast<size_t>(n) * C + ci) * H * W;
            const size_t yplane = (static_cast<size_t>(n) * K + k) * P * Q;
            const size_t wbase = ((static_cast<size_t>(k) * Cg + c) * R) * S;
            for (int r = 0; r < R; ++r)
              for (int s = 0; s < S; ++s)
                for (int p = 0; p < P; ++p) {
                  const int ih = p * conv.stride_h - conv.pad_h + r * conv.dil_h;
                  if (ih < 0 || ih >= H) continue;
                  for (int q = 0; q < Q; ++q) {
                    const int iw = q * conv.stride_w - conv.pad_w + s * conv.dil_w;
                    if (iw < 0 || iw >= W) continue;
                    f(xplane + static_cast<size_t>(ih) * W + iw,
                      yplane + static_cast<size_t>(p) * Q + q, wbase + r * S + s);
                  }
                }
          }
        }
  }

  void forward(const void* xp, const void* wp, void* yp, double alpha, double beta) const {
    const std::vector<double> xv = load_tensor(x, xp), wv = load_filter(wp);
    std::vector<double> acc(static_cast<size_t>(N) * K * P * Q, 0.0);
    for_each_tap([&](size_t xi, size_t yi, size_t wi) { acc[yi] += wv[wi] * xv[xi]; });
    store_tensor(y, yp, acc, alpha, beta);
  }
  void backward_data(const void* wp, const void* dyp, void* dxp, double alpha, double beta) const {
    const std::vector<double> dyv = load_tensor(y, dyp), wv = load_filter(wp);
    std::vector<double> acc(static_cast<size_t>(N) * C * H * W, 0.0);
    for_each_tap([&](size_t xi, size_t yi, size_t wi) { acc[xi] += wv[wi] * dyv[yi]; });
    store_tensor(x, dxp, acc, alpha, beta);
  }
  void backward_filter(const void* xp, const void* dyp, void* dwp, double alpha,
                       double beta) const {
    const std::vector<double> xv = load_tensor(x, xp), dyv = load_tensor(y, dyp);
    std::vector<double> acc(static_cast<size_t>(K) * Cg * R * S, 0.0);
    for_each_tap([&](size_t xi, size_t yi, size_t wi) { acc[wi] += xv[xi] * dyv[yi]; });
    store_filter(dwp, acc, alpha, beta);
  }
};

// The checks every query and compute call makes on (x, w, conv, y).
cudnnStatus_t make_problem(const cudnnTensorStruct* x, const cudnnFilterStruct* w,
                           const cudnnConvolutionStruct* conv, const cudnnTensorStruct* y,
                           Problem& pr) {
  if (!x || !w || !conv || !y) return CUDNN_STATUS_BAD_PARAM;
  if (!x->set || !w->set || !conv->set || !y->set) return CUDNN_STATUS_BAD_PARAM;
  if (x->type != w->type || y->type != x->type) return CUDNN_STATUS_BAD_PARAM;
  const cudnnDataType_t t = x->type;
  if (conv->groups < 1 || x->dim[1] != w->c * conv->groups || w->k % conv->groups != 0)
    return CUDNN_STATUS_BAD_PARAM;
  const int P = out_size(x->dim[2], conv->pad_h, w->r, conv->dil_h, conv->stride_h);
  const int Q = out_size(x->dim[3], conv->pad_w, w->s, conv->dil_w, conv->stride_w);
  if (P <= 0 || Q <= 0) return CUDNN_STATUS_BAD_PARAM;
  if (y->dim[0] != x->dim[0] || y->dim[1] != w->k || y->dim[2] != P || y->dim[3] != Q)
    return CUDNN_STATUS_BAD_PARAM;
  // Data and compute type: float in float, double in double, bfloat16 in float ("pseudo") or
  // bfloat16. Half and the integer types are not simulated.
  const bool ok = (t == CUDNN_DATA_FLOAT && conv->compute == CUDNN_DATA_FLOAT) ||
                  (t == CUDNN_DATA_DOUBLE && conv->compute == CUDNN_DATA_DOUBLE) ||
                  (t == CUDNN_DATA_BFLOAT16 &&
                   (conv->compute == CUDNN_DATA_FLOAT || conv->compute == CUDNN_DATA_BFLOAT16));
  if (!ok) return CUDNN_STATUS_NOT_SUPPORTED;
  pr.x = *x, pr.y = *y, pr.w = *w, pr.conv = *conv;
  pr.N = x->dim[0], pr.C = x->dim[1], pr.H = x->dim[2], pr.W = x->dim[3];
  pr.K = w->k, pr.Cg = w->c, pr.G = conv->groups, pr.Kg = w->k / conv->groups;
  pr.R = w->r, pr.S = w->s, pr.P = P, pr.Q = Q;
  return CUDNN_STATUS_SUCCESS;
}

enum class Dir { Forward, BackwardData, BackwardFilter };

// The simulated algorithms of one direction, best first: number, workspace rule, determinism.
struct Algo {
  int algo;
  bool deterministic;
  int workspace;  // 0: none, 1: an index table, 2: one image's im2col, 3: a filter-sized buffer
};
const std::vector<Algo>& algos(Dir d) {
  static const std::vector<Algo> fwd = {{CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, true, 1},
                                        {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, true, 0},
                                        {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, true, 2}};
  static const std::vector<Algo> bwd_data = {{CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, false, 0},
                                             {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, true, 1}};
  static const std::vector<Algo> bwd_filter = {{CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, false, 0},
                                               {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, true, 3}};
  return d == Dir::Forward ? fwd : d == Dir::BackwardData ? bwd_data : bwd_filter;
}
int algo_count(Dir d) {
  switch (d) {
    case Dir::Forward:
      return CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
    case Dir::BackwardData:
      return CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
    case Dir::BackwardFilter:
      return CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  }
  return 0;
}
const Algo* find_algo(Dir d, int a) {
  for (const Algo& x : algos(d))
    if (x.algo == a) return &x;
  return nullptr;
}
size_t workspace_bytes(const Algo& a, const Problem& p) {
  const size_t taps = static_cast<size_t>(p.Cg) * p.R * p.S;
  switch (a.workspace) {
    case 1:
      return 256 + 8 * taps;
    case 2:
      return taps * p.P * p.Q * elem_size(p.x.type);
    case 3:
      return taps * p.K * sizeof(float);
  }
  return 0;
}

// The algorithm's workspace size, or BAD_PARAM for an unknown algorithm number and NOT_SUPPORTED
// for a known one that the simulator does not offer.
cudnnStatus_t workspace_for(Dir d, int algo, const Problem& p, size_t* bytes) {
  if (algo < 0 || algo >= algo_count(d)) return CUDNN_STATUS_BAD_PARAM;
  const Algo* a = find_algo(d, algo);
  if (!a) return CUDNN_STATUS_NOT_SUPPORTED;
  *bytes = workspace_bytes(*a, p);
  return CUDNN_STATUS_SUCCESS;
}

template <class Perf, class AlgoEnum>
cudnnStatus_t heuristics(Dir d, const Problem& p, int requested, int* returned, Perf* perf) {
  if (requested <= 0 || !returned || !perf) return CUDNN_STATUS_BAD_PARAM;
  int n = 0;
  auto add = [&](int algo, cudnnStatus_t status, size_t memory, bool det) {
    if (n >= requested) return;
    Perf e{};
    e.algo = static_cast<AlgoEnum>(algo);
    e.status = status;
    e.time = -1.0f;
    e.memory = memory;
    e.determinism = det ? CUDNN_DETERMINISTIC : CUDNN_NON_DETERMINISTIC;
    e.mathType = p.conv.math;
    perf[n++] = e;
  };
  for (const Algo& a : algos(d))
    add(a.algo, CUDNN_STATUS_SUCCESS, workspace_bytes(a, p), a.deterministic);
  for (int a = 0; a < algo_count(d); ++a)
    if (!find_algo(d, a)) add(a, CUDNN_STATUS_NOT_SUPPORTED, 0, true);
  *returned = n;
  return CUDNN_STATUS_SUCCESS;
}

// The timing runs' fixed, fake clock (the simulator measures nothing): forward ranks the
// algorithms in the reverse of the heuristics' order, so that a timed choice differs from an
// untimed one; the backward directions keep the heuristics' order, whose first algorithm is not
// deterministic, so that a deterministic timed choice must skip the winner.
float fake_time_ms(Dir d, size_t rank_in_heuristics) {
  const size_t n = algos(d).size();
  return 1.0f +
         static_cast<float>(d == Dir::Forward ? n - 1 - rank_in_heuristics : rank_in_heuristics);
}

size_t extent_bytes(const cudnnTensorStruct& t) {
  long long last = 0;
  for (int i = 0; i < 4; ++i) last += (t.dim[i] - 1) * t.stride[i];
  return static_cast<size_t>(last + 1) * elem_size(t.type);
}

// cudnnFind*AlgorithmEx: "runs" every offered algorithm whose workspace fits into workspace_size
// on the caller's operands (the convolution once, since all give the same result), writing into
// out (whose contents are undefined afterwards: the
// simulator leaves NaN bytes there), and returns them fastest first, then the ones that did not
// fit and the ones it does not offer (both CUDNN_STATUS_NOT_SUPPORTED). Like the real
// call it synchronises the stream, so it fails inside a stream capture.
template <class Perf, class AlgoEnum, class Run>
cudnnStatus_t find(cudnnHandle_t handle, Dir d, const Problem& p, const void* in0, const void* in1,
                   void* out, size_t out_bytes, int requested, int* returned, Perf* perf,
                   void* workspace, size_t workspace_size, Run run) {
  if (requested <= 0 || !returned || !perf || !in0 || !in1 || !out) return CUDNN_STATUS_BAD_PARAM;
  if (workspace_size > 0 && !workspace) return CUDNN_STATUS_BAD_PARAM;
  if (cudaStreamSynchronize(handle->stream) != cudaSuccess) return CUDNN_STATUS_EXECUTION_FAILED;
  std::vector<Perf> ran, rest;
  bool computed = false;  // every simulated algorithm computes the same result: once is enough
  for (size_t i = 0; i < algos(d).size(); ++i) {
    const Algo& a = algos(d)[i];
    Perf e{};
    e.algo = static_cast<AlgoEnum>(a.algo);
    e.memory = workspace_bytes(a, p);
    e.determinism = a.deterministic ? CUDNN_DETERMINISTIC : CUDNN_NON_DETERMINISTIC;
    e.mathType = p.conv.math;
    if (e.memory > workspace_size) {
      e.status = CUDNN_STATUS_NOT_SUPPORTED;
      e.time = -1.0f;
      rest.push_back(e);
      continue;
    }
    if (!computed) run(p, in0, in1, out);
    computed = true;
    e.status = CUDNN_STATUS_SUCCESS;
    e.time = fake_time_ms(d, i);
    ran.push_back(e);
  }
  std::stable_sort(ran.begin(), ran.end(),
                   [](const Perf& a, const Perf& b) { return a.time < b.time; });
  for (int a = 0; a < algo_count(d); ++a)
    if (!find_algo(d, a)) {
      Perf e{};
      e.algo = static_cast<AlgoEnum>(a);
      e.status = CUDNN_STATUS_NOT_SUPPORTED;
      e.time = -1.0f;
      e.determinism = CUDNN_DETERMINISTIC;
      e.mathType = p.conv.math;
      rest.push_back(e);
    }
  std::memset(out, 0xff, out_bytes);
  int n = 0;
  for (const auto* list : {&ran, &rest})
    for (const Perf& e : *list)
      if (n < requested) perf[n++] = e;
  *returned = n;
  return CUDNN_STATUS_SUCCESS;
}

// The common part of the three compute calls: validation, then the work queued by value.
template <class Work>
cudnnStatus_t compute(cudnnHandle_t handle, Dir d, int algo, const Problem& p, const void* alpha,
                      const void* beta, const void* in0, const void* in1, void* out,
                      void* workspace, size_t workspace_size, Work work, const char* what) {
  size_t need = 0;
  const cudnnStatus_t s = workspace_for(d, algo, p, &need);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  if (need > 0 && (!workspace || workspace_size < need)) return CUDNN_STATUS_BAD_PARAM;
  if (!alpha || !beta || !in0 || !in1 || !out) return CUDNN_STATUS_BAD_PARAM;
  // Scaling factors are double for double data and float otherwise, read now (host memory).
  const bool dbl = p.x.type == CUDNN_DATA_DOUBLE;
  const double a = dbl ? *static_cast<const double*>(alpha) : *static_cast<const float*>(alpha);
  const double b = dbl ? *static_cast<const double*>(beta) : *static_cast<const float*>(beta);
  okd::sim::enqueue(
      handle->stream, [p, in0, in1, out, a, b, work] { work(p, in0, in1, out, a, b); }, what);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t set_tensor(cudnnTensorDescriptor_t d, cudnnDataType_t t, const int dim[4],
                         const long long stride[4]) {
  if (!d || !valid_type(t)) return CUDNN_STATUS_BAD_PARAM;
  long long total = 1;
  for (int i = 0; i < 4; ++i) {
    if (dim[i] <= 0 || stride[i] < 0) return CUDNN_STATUS_BAD_PARAM;
    total *= dim[i];
  }
  if (total > (1LL << 31)) return CUDNN_STATUS_NOT_SUPPORTED;  // the 2 Giga-element limit
  d->type = t;
  for (int i = 0; i < 4; ++i) d->dim[i] = dim[i], d->stride[i] = stride[i];
  d->set = true;
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char* cudnnGetErrorString(cudnnStatus_t status) {
  switch (status) {
    case CUDNN_STATUS_SUCCESS:
      return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED:
      return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM:
      return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER:
      return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_NOT_SUPPORTED:
      return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_INTERNAL_ERROR:
      return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_EXECUTION_FAILED:
      return "CUDNN_STATUS_EXECUTION_FAILED";
  }
  return "CUDNN_STATUS_UNKNOWN";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  *handle = new cudnnContext();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  delete handle;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  handle->stream = streamId;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t* streamId) {
  if (!handle || !streamId) return CUDNN_STATUS_BAD_PARAM;
  *streamId = handle->stream;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* tensorDesc) {
  if (!tensorDesc) return CUDNN_STATUS_BAD_PARAM;
  *tensorDesc = new cudnnTensorStruct();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) {
  delete tensorDesc;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc,
                                         cudnnTensorFormat_t format, cudnnDataType_t dataType,
                                         int n, int c, int h, int w) {
  const int dim[4] = {n, c, h, w};
  long long hw = static_cast<long long>(h) * w;
  if (format == CUDNN_TENSOR_NCHW) {
    const long long stride[4] = {c * hw, hw, w, 1};
    return set_tensor(tensorDesc, dataType, dim, stride);
  }
  if (format == CUDNN_TENSOR_NHWC) {
    const long long stride[4] = {c * hw, 1, static_cast<long long>(w) * c, c};
    return set_tensor(tensorDesc, dataType, dim, stride);
  }
  return CUDNN_STATUS_BAD_PARAM;  // NCHW_VECT_C needs a vectorised integer type
}
cudnnStatus_t cudnnSetTensor4dDescriptorEx(cudnnTensorDescriptor_t tensorDesc,
                                           cudnnDataType_t dataType, int n, int c, int h, int w,
                                           int nStride, int cStride, int hStride, int wStride) {
  const int dim[4] = {n, c, h, w};
  const long long stride[4] = {nStride, cStride, hStride, wStride};
  return set_tensor(tensorDesc, dataType, dim, stride);
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* filterDesc) {
  if (!filterDesc) return CUDNN_STATUS_BAD_PARAM;
  *filterDesc = new cudnnFilterStruct();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) {
  delete filterDesc;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc,
                                         cudnnDataType_t dataType, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w) {
  if (!filterDesc || !valid_type(dataType)) return CUDNN_STATUS_BAD_PARAM;
  if (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC) return CUDNN_STATUS_BAD_PARAM;
  if (k <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  filterDesc->type = dataType;
  filterDesc->format = format;
  filterDesc->k = k, filterDesc->c = c, filterDesc->r = h, filterDesc->s = w;
  filterDesc->set = true;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* convDesc) {
  if (!convDesc) return CUDNN_STATUS_BAD_PARAM;
  *convDesc = new cudnnConvolutionStruct();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) {
  delete convDesc;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h,
                                              int pad_w, int u, int v, int dilation_h,
                                              int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType) {
  if (!convDesc || !valid_type(computeType)) return CUDNN_STATUS_BAD_PARAM;
  if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0)
    return CUDNN_STATUS_BAD_PARAM;
  if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) return CUDNN_STATUS_BAD_PARAM;
  convDesc->pad_h = pad_h, convDesc->pad_w = pad_w;
  convDesc->stride_h = u, convDesc->stride_w = v;
  convDesc->dil_h = dilation_h, convDesc->dil_w = dilation_w;
  convDesc->mode = mode;
  convDesc->compute = computeType;
  convDesc->set = true;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int groupCount) {
  if (!convDesc || groupCount < 1) return CUDNN_STATUS_BAD_PARAM;
  convDesc->groups = groupCount;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc,
                                          cudnnMathType_t mathType) {
  if (!convDesc) return CUDNN_STATUS_BAD_PARAM;
  if (mathType != CUDNN_DEFAULT_MATH && mathType != CUDNN_TENSOR_OP_MATH &&
      mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && mathType != CUDNN_FMA_MATH)
    return CUDNN_STATUS_BAD_PARAM;
  convDesc->math = mathType;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                    const cudnnTensorDescriptor_t inputTensorDesc,
                                                    const cudnnFilterDescriptor_t filterDesc,
                                                    int* n, int* c, int* h, int* w) {
  const cudnnConvolutionStruct* cv = convDesc;
  const cudnnTensorStruct* x = inputTensorDesc;
  const cudnnFilterStruct* f = filterDesc;
  if (!cv || !x || !f || !cv->set || !x->set || !f->set || !n || !c || !h || !w)
    return CUDNN_STATUS_BAD_PARAM;
  if (x->dim[1] != f->c * cv->groups || f->k % cv->groups != 0) return CUDNN_STATUS_BAD_PARAM;
  const int P = out_size(x->dim[2], cv->pad_h, f->r, cv->dil_h, cv->stride_h);
  const int Q = out_size(x->dim[3], cv->pad_w, f->s, cv->dil_w, cv->stride_w);
  if (P <= 0 || Q <= 0) return CUDNN_STATUS_BAD_PARAM;
  *n = x->dim[0], *c = f->k, *h = P, *w = Q;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnFilterDescriptor_t filterDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t destDesc, const int requestedAlgoCount, int* returnedAlgoCount,
    cudnnConvolutionFwdAlgoPerf_t* perfResults) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Problem p;
  const cudnnStatus_t s = make_problem(srcDesc, filterDesc, convDesc, destDesc, p);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  return heuristics<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
      Dir::Forward, p, requestedAlgoCount, returnedAlgoCount, perfResults);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t filterDesc,
    const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t gradDesc, const int requestedAlgoCount, int* returnedAlgoCount,
    cudnnConvolutionBwdDataAlgoPerf_t* perfResults) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Problem p;
  const cudnnStatus_t s = make_problem(gradDesc, filterDesc, convDesc, diffDesc, p);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  return heuristics<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
      Dir::BackwardData, p, requestedAlgoCount, returnedAlgoCount, perfResults);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t gradDesc, const int requestedAlgoCount, int* returnedAlgoCount,
    cudnnConvolutionBwdFilterAlgoPerf_t* perfResults) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Problem p;
  const cudnnStatus_t s = make_problem(srcDesc, gradDesc, convDesc, diffDesc, p);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  return heuristics<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
      Dir::BackwardFilter, p, requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void* x,
    const cudnnFilterDescriptor_t wDesc, const void* w, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t yDesc, void* y, const int requestedAlgoCount,
    int* returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t* perfResults, void* workSpace,
    size_t workSpaceSizeInBytes) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Problem p;
  const cudnnStatus_t s = make_problem(xDesc, wDesc, convDesc, yDesc, p);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  return find<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
      handle, Dir::Forward, p, x, w, y, extent_bytes(p.y), requestedAlgoCount, returnedAlgoCount,
      perfResults, workSpace, workSpaceSizeInBytes,
      [](const Problem& pr, const void* xp, const void* wp, void* yp) {
        pr.forward(xp, wp, yp, 1.0, 0.0);
      });
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc, const void* w,
    const cudnnTensorDescriptor_t dyDesc, const void* dy,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t dxDesc, void* dx,
    const int requestedAlgoCount, int* returnedAlgoCount,
    cudnnConvolutionBwdDataAlgoPerf_t* perfResults, void* workSpace, size_t workSpaceSizeInBytes) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Problem p;
  const cudnnStatus_t s = make_problem(dxDesc, wDesc, convDesc, dyDesc, p);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  return find<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
      handle, Dir::BackwardData, p, w, dy, dx, extent_bytes(p.x), requestedAlgoCount,
      returnedAlgoCount, perfResults, workSpace, workSpaceSizeInBytes,
      [](const Problem& pr, const void* wp, const void* dyp, void* dxp) {
        pr.backward_data(wp, dyp, dxp, 1.0, 0.0);
      });
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void* x,
    const cudnnTensorDescriptor_t dyDesc, const void* y,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t dwDesc, void* dw,
    const int requestedAlgoCount, int* returnedAlgoCount,
    cudnnConvolutionBwdFilterAlgoPerf_t* perfResults, void* workSpace,
    size_t workSpaceSizeInBytes) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Problem p;
  const cudnnStatus_t s = make_problem(xDesc, dwDesc, convDesc, dyDesc, p);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  const size_t dw_bytes = static_cast<size_t>(p.K) * p.Cg * p.R * p.S * elem_size(p.w.type);
  return find<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
      handle, Dir::BackwardFilter, p, x, y, dw, dw_bytes, requestedAlgoCount, returnedAlgoCount,
      perfResults, workSpace, workSpaceSizeInBytes,
      [](const Problem& pr, const void* xp, const void* dyp, void* dwp) {
        pr.backward_filter(xp, dyp, dwp, 1.0, 0.0);
      });
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const cudnnFilterDescriptor_t wDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t yDesc,
    cudnnConvolutionFwdAlgo_t algo, size_t* sizeInBytes) {
  if (!handle || !sizeInBytes) return CUDNN_STATUS_BAD_PARAM;
  Problem p;
  const cudnnStatus_t s = make_problem(xDesc, wDesc, convDesc, yDesc, p);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  return workspace_for(Dir::Forward, algo, p, sizeInBytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc, const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t dxDesc,
    cudnnConvolutionBwdDataAlgo_t algo, size_t* sizeInBytes) {
  if (!handle || !sizeInBytes) return CUDNN_STATUS_BAD_PARAM;
  Problem p;
  const cudnnStatus_t s = make_problem(dxDesc, wDesc, convDesc, dyDesc, p);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  return workspace_for(Dir::BackwardData, algo, p, sizeInBytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t gradDesc,
    cudnnConvolutionBwdFilterAlgo_t algo, size_t* sizeInBytes) {
  if (!handle || !sizeInBytes) return CUDNN_STATUS_BAD_PARAM;
  Problem p;
  const cudnnStatus_t s = make_problem(xDesc, gradDesc, convDesc, dyDesc, p);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  return workspace_for(Dir::BackwardFilter, algo, p, sizeInBytes);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void* alpha,
                                      const cudnnTensorDescriptor_t xDesc, const void* x,
                                      const cudnnFilterDescriptor_t wDesc, const void* w,
                                      const cudnnConvolutionDescriptor_t convDesc,
                                      cudnnConvolutionFwdAlgo_t algo, void* workSpace,
                                      size_t workSpaceSizeInBytes, const void* beta,
                                      const cudnnTensorDescriptor_t yDesc, void* y) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Problem p;
  const cudnnStatus_t s = make_problem(xDesc, wDesc, convDesc, yDesc, p);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  return compute(
      handle, Dir::Forward, algo, p, alpha, beta, x, w, y, workSpace, workSpaceSizeInBytes,
      [](const Problem& pr, const void* xp, const void* wp, void* yp, double a, double b) {
        pr.forward(xp, wp, yp, a, b);
      },
      "cudnnConvolutionForward");
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void* alpha,
                                           const cudnnFilterDescriptor_t wDesc, const void* w,
                                           const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void* workSpace,
                                           size_t workSpaceSizeInBytes, const void* beta,
                                           const cudnnTensorDescriptor_t dxDesc, void* dx) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Problem p;
  const cudnnStatus_t s = make_problem(dxDesc, wDesc, convDesc, dyDesc, p);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  return compute(
      handle, Dir::BackwardData, algo, p, alpha, beta, w, dy, dx, workSpace, workSpaceSizeInBytes,
      [](const Problem& pr, const void* wp, const void* dyp, void* dxp, double a, double b) {
        pr.backward_data(wp, dyp, dxp, a, b);
      },
      "cudnnConvolutionBackwardData");
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void* alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void* x,
                                             const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* workSpace,
                                             size_t workSpaceSizeInBytes, const void* beta,
                                             const cudnnFilterDescriptor_t dwDesc, void* dw) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Problem p;
  const cudnnStatus_t s = make_problem(xDesc, dwDesc, convDesc, dyDesc, p);
  if (s != CUDNN_STATUS_SUCCESS) return s;
  return compute(
      handle, Dir::BackwardFilter, algo, p, alpha, beta, x, dy, dw, workSpace, workSpaceSizeInBytes,
      [](const Problem& pr, const void* xp, const void* dyp, void* dwp, double a, double b) {
        pr.backward_filter(xp, dyp, dwp, a, b);
      },
      "cudnnConvolutionBackwardFilter");
}

}  // extern "C"
