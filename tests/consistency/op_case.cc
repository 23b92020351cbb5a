#include "tests/consistency/op_case.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status.h"

namespace tandem::kernels::testing {
namespace {

// Kept a multiple of 64 so that the payload between the guards stays 64-byte aligned.
constexpr int64_t kGuardBytes = 256;

uint8_t GuardByte(int64_t i) { return static_cast<uint8_t>(0xA5 ^ (i * 29)); }

void PutHalf(uint8_t* p, float v) {
  const uint16_t h = FloatToHalf(v);
  std::memcpy(p, &h, 2);
}

// Byte offsets of the fp16 scale fields of each block format, and the range each is drawn from.
struct ScaleField {
  int offset;
  float lo;
  float hi;
};

std::vector<ScaleField> ScaleFields(DType t) {
  switch (t) {
    case DType::kQ4_0:
      return {{0, -0.03f, 0.03f}};
    case DType::kQ4_1:
      return {{0, 0.005f, 0.02f}, {2, -0.15f, -0.05f}};
    case DType::kQ5_0:
      return {{0, -0.015f, 0.015f}};
    case DType::kQ5_1:
      return {{0, 0.002f, 0.01f}, {2, -0.15f, -0.05f}};
    case DType::kQ8_0:
      return {{0, -0.002f, 0.002f}};
    case DType::kQ8_1:
      return {{0, 0.0005f, 0.002f}};  // s is derived below
    case DType::kQ4_K:
    case DType::kQ5_K:
      return {{0, 0.0002f, 0.0006f}, {2, 0.0002f, 0.0006f}};
    case DType::kQ6_K:
      return {{208, 0.0002f, 0.0006f}};
    default:
      return {};
  }
}

std::vector<double> Decode(DType dtype, const std::vector<uint8_t>& bytes) {
  std::vector<double> out;
  const size_t n = bytes.size() / static_cast<size_t>(DTypeBlockBytes(dtype));
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = bytes.data() + i * DTypeBlockBytes(dtype);
    uint16_t h;
    switch (dtype) {
      case DType::kF32: {
        float f;
        std::memcpy(&f, p, 4);
        out.push_back(f);
        break;
      }
      case DType::kF16:
        std::memcpy(&h, p, 2);
        out.push_back(HalfToFloat(h));
        break;
      case DType::kBF16:
        std::memcpy(&h, p, 2);
        out.push_back(BF16ToFloat(h));
        break;
      case DType::kI32: {
        int32_t v;
        std::memcpy(&v, p, 4);
        out.push_back(v);
        break;
      }
      default:
        out.push_back(p[0]);  // raw bytes for anything else; compared exactly in effect
        break;
    }
  }
  return out;
}

}  // namespace

int64_t CaseTensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

int64_t CaseTensor::bytes() const { return DTypeRowBytes(dtype, numel()); }

double OpCase::Bytes() const {
  double total = 0.0;
  for (const CaseTensor& t : tensors_) total += static_cast<double>(t.bytes());
  return total;
}

CaseTensor& OpCase::Add(std::string name, DType dtype, std::vector<int64_t> shape, Role role) {
  CaseTensor& t = tensors_.emplace_back();
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.role = role;
  t.init.assign(static_cast<size_t>(t.bytes()), 0);
  return t;
}

void FillUniform(CaseTensor& t, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float v = dist(rng);
    if (t.dtype == DType::kF32) {
      t.f32()[i] = v;
    } else if (t.dtype == DType::kF16) {
      PutHalf(t.init.data() + 2 * i, v);
    } else {
      const uint16_t b = FloatToBF16(v);
      std::memcpy(t.init.data() + 2 * i, &b, 2);
    }
  }
}

void FillWeights(CaseTensor& t, std::mt19937& rng) {
  if (!DTypeIsQuantized(t.dtype)) {
    FillUniform(t, rng, -0.5f, 0.5f);
    return;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : t.init) b = static_cast<uint8_t>(byte(rng));
  const int64_t block = DTypeBlockBytes(t.dtype);
  const std::vector<ScaleField> fields = ScaleFields(t.dtype);
  for (int64_t off = 0; off < static_cast<int64_t>(t.init.size()); off += block) {
    uint8_t* b = t.init.data() + off;
    for (const ScaleField& f : fields) {
      PutHalf(b + f.offset, std::uniform_real_distribution<float>(f.lo, f.hi)(rng));
    }
    if (t.dtype == DType::kQ8_1) {  // s = d * sum(q), as llama.cpp's quantize_row_q8_1 writes it
      uint16_t d;
      std::memcpy(&d, b, 2);
      int sum = 0;
      for (int k = 0; k < 32; ++k) sum += static_cast<int8_t>(b[4 + k]);
      PutHalf(b + 2, HalfToFloat(d) * static_cast<float>(sum));
    }
  }
}

void SetI32(CaseTensor& t, const std::vector<int32_t>& values) {
  t.init.assign(values.size() * 4, 0);
  std::memcpy(t.init.data(), values.data(), values.size() * 4);
}

namespace {

// The case's tensors in guarded buffers of one backend.
struct Uploaded {
  std::vector<DeviceBuffer> buffers;
  std::vector<TensorView> views;
};

absl::StatusOr<Uploaded> Upload(const OpCase& c, KernelBackend& backend) {
  Uploaded up;
  for (const CaseTensor& t : c.tensors()) {
    const int64_t total = t.bytes() + 2 * kGuardBytes;
    TANDEM_ASSIGN_OR_RETURN(DeviceBuffer buf, DeviceBuffer::Create(backend, total));
    std::vector<uint8_t> staged(static_cast<size_t>(total));
    for (int64_t i = 0; i < total; ++i) staged[i] = GuardByte(i);
    std::memcpy(staged.data() + kGuardBytes, t.init.data(), t.init.size());
    TANDEM_RETURN_IF_ERROR(backend.CopyToDevice(buf.data(), staged.data(), total));
    TensorView v;
    v.data = static_cast<char*>(buf.data()) + kGuardBytes;
    v.dtype = t.dtype;
    v.device = backend.device();
    v.ndim = static_cast<int>(t.shape.size());
    int64_t stride = DTypeBlockBytes(t.dtype);
    for (int d = v.ndim - 1; d >= 0; --d) {
      v.shape[d] = t.shape[d];
      v.stride_bytes[d] = stride;
      stride *= d == v.ndim - 1 ? t.shape[d] / DTypeBlockElems(t.dtype) : t.shape[d];
    }
    up.views.push_back(v);
    up.buffers.push_back(std::move(buf));
  }
  return up;
}

}  // namespace

absl::StatusOr<RunResult> RunOnBackend(OpCase& c, KernelBackend& backend) {
  const std::string where = absl::StrCat(c.Name(), " on ", AV(backend.Name()), ": ");
  const std::vector<CaseTensor>& ts = c.tensors();
  absl::StatusOr<Uploaded> up = Upload(c, backend);
  if (!up.ok()) return Annotate(up.status(), where);
  std::vector<DeviceBuffer>& buffers = up->buffers;
  const OpCall call = c.MakeCall(up->views);
  if (OpName(call) != c.Op()) {  // --ops filters and ctest names would mislabel the case
    return absl::InternalError(absl::StrCat(where, "the call is ", AV(OpName(call)),
                                            ", but the case names its op ", c.Op()));
  }
  RunResult r;
  if (!backend.Supports(call)) {
    r.supported = false;
    return r;
  }
  absl::Status s = backend.Run(call);
  if (s.ok()) s = backend.Synchronize();
  if (!s.ok()) return Annotate(s, where);

  r.outputs.resize(ts.size());
  for (size_t k = 0; k < ts.size(); ++k) {
    const CaseTensor& t = ts[k];
    const int64_t total = t.bytes() + 2 * kGuardBytes;
    std::vector<uint8_t> back(static_cast<size_t>(total));
    s = backend.CopyToHost(back.data(), buffers[k].data(), total);
    if (!s.ok()) return Annotate(s, where);
    for (int64_t i = 0; i < kGuardBytes; ++i) {
      if (back[i] != GuardByte(i) ||
          back[total - kGuardBytes + i] != GuardByte(total - kGuardBytes + i)) {
        r.violations.push_back(absl::StrCat("guard region of ", t.name, " was written"));
        break;
      }
    }
    const uint8_t* payload = back.data() + kGuardBytes;
    if (t.role == Role::kOut) {
      r.outputs[k].assign(payload, payload + t.bytes());
    } else if (std::memcmp(payload, t.init.data(), t.init.size()) != 0) {
      r.violations.push_back(absl::StrCat("input ", t.name, " was modified"));
    }
  }
  r.host = c.HostResults();
  return r;
}

absl::StatusOr<double> TimeOnBackend(OpCase& c, KernelBackend& backend, double min_seconds) {
  TANDEM_ASSIGN_OR_RETURN(Uploaded up, Upload(c, backend));
  const OpCall call = c.MakeCall(up.views);
  if (!backend.Supports(call)) {
    return absl::UnimplementedError(
        absl::StrCat(AV(backend.Name()), " does not support ", c.Name()));
  }
  TANDEM_RETURN_IF_ERROR(backend.Run(call));  // warm-up
  TANDEM_RETURN_IF_ERROR(backend.Synchronize());
  int64_t iters = 0;
  const absl::Time start = absl::Now();
  double elapsed = 0.0;
  do {
    TANDEM_RETURN_IF_ERROR(backend.Run(call));
    ++iters;
    if (iters % 8 == 0 || iters < 8) {
      TANDEM_RETURN_IF_ERROR(backend.Synchronize());
      elapsed = absl::ToDoubleSeconds(absl::Now() - start);
    }
  } while (elapsed < min_seconds);
  TANDEM_RETURN_IF_ERROR(backend.Synchronize());
  return absl::ToDoubleSeconds(absl::Now() - start) / static_cast<double>(iters);
}

double Nmse(const std::vector<double>& a, const std::vector<double>& b) {
  double err = 0.0;
  double ref = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) continue;
    err += (a[i] - b[i]) * (a[i] - b[i]);
    ref += b[i] * b[i];
  }
  return ref > 0.0 ? err / ref : err;
}

CompareReport Compare(const OpCase& c, const RunResult& ref, const RunResult& got) {
  CompareReport rep;
  auto fail = [&rep](const std::string& line) {
    rep.ok = false;
    absl::StrAppend(&rep.message, line, "\n");
  };
  for (const std::string& v : got.violations) fail(v);
  const std::vector<CaseTensor>& ts = c.tensors();
  for (size_t k = 0; k < ts.size(); ++k) {
    if (ts[k].role != Role::kOut) continue;
    const std::vector<double> a = Decode(ts[k].dtype, got.outputs[k]);
    const std::vector<double> b = Decode(ts[k].dtype, ref.outputs[k]);
    if (a.size() != b.size()) {
      fail(absl::StrCat(ts[k].name, ": ", a.size(), " values vs reference ", b.size()));
      continue;
    }
    int64_t nan = 0;
    int64_t inf_mismatch = 0;
    int64_t first_bad = -1;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::isnan(a[i]) || std::isnan(b[i])) {
        if (nan++ == 0) first_bad = static_cast<int64_t>(i);
      } else if ((std::isinf(a[i]) || std::isinf(b[i])) && a[i] != b[i]) {
        if (inf_mismatch++ == 0 && first_bad < 0) first_bad = static_cast<int64_t>(i);
      }
    }
    if (nan > 0) {
      fail(absl::StrCat(ts[k].name, ": ", nan, " NaN value(s), first at flat index ", first_bad));
    }
    if (inf_mismatch > 0) {
      fail(absl::StrCat(ts[k].name, ": ", inf_mismatch,
                        " infinities disagree with the reference, first at flat index ",
                        first_bad));
    }
    const double nmse = Nmse(a, b);
    rep.worst_nmse = std::max(rep.worst_nmse, nmse);
    if (!(nmse <= c.MaxNmse())) {
      fail(absl::StrFormat("%s: NMSE %.3g > max %.3g", ts[k].name, nmse, c.MaxNmse()));
    }
  }
  if (got.host != ref.host) {
    std::string a, b;
    for (int64_t v : got.host) absl::StrAppend(&a, v, " ");
    for (int64_t v : ref.host) absl::StrAppend(&b, v, " ");
    fail(absl::StrCat("host results differ: got [", a, "] reference [", b, "]"));
  }
  return rep;
}

}  // namespace tandem::kernels::testing
