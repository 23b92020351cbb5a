#include "kernels/model/weights.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::model {
namespace {

absl::StatusOr<TensorView> Place(const format::GgufFile& file, const std::string& name,
                                 kernels::KernelBackend& backend,
                                 std::vector<kernels::DeviceBuffer>& owned) {
  TANDEM_ASSIGN_OR_RETURN(TensorView host, file.TensorData(name));
  if (backend.device().kind == DeviceKind::kCpu) return host;
  TANDEM_ASSIGN_OR_RETURN(kernels::DeviceBuffer buffer,
                          kernels::DeviceBuffer::Create(backend, host.nbytes()));
  TANDEM_RETURN_IF_ERROR(backend.CopyToDevice(buffer.data(), host.data, host.nbytes()));
  TensorView dev = host;
  dev.data = buffer.data();
  dev.device = backend.device();
  owned.push_back(std::move(buffer));
  return dev;
}

}  // namespace

absl::StatusOr<LlamaWeights> LlamaWeights::Load(const format::GgufFile& file,
                                                const format::ModelConfig& config,
                                                kernels::KernelBackend& backend) {
  LlamaWeights w;
  TANDEM_ASSIGN_OR_RETURN(w.token_embd, Place(file, "token_embd.weight", backend, w.owned));
  TANDEM_ASSIGN_OR_RETURN(w.output_norm, Place(file, "output_norm.weight", backend, w.owned));
  if (config.tied_embeddings) {
    w.lm_head = w.token_embd;
  } else {
    TANDEM_ASSIGN_OR_RETURN(w.lm_head, Place(file, "output.weight", backend, w.owned));
  }
  w.layers.resize(config.n_layers);
  for (int l = 0; l < config.n_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    LayerWeights& lw = w.layers[l];
    TANDEM_ASSIGN_OR_RETURN(lw.attn_norm, Place(file, p + "attn_norm.weight", backend, w.owned));
    TANDEM_ASSIGN_OR_RETURN(lw.wq, Place(file, p + "attn_q.weight", backend, w.owned));
    TANDEM_ASSIGN_OR_RETURN(lw.wk, Place(file, p + "attn_k.weight", backend, w.owned));
    TANDEM_ASSIGN_OR_RETURN(lw.wv, Place(file, p + "attn_v.weight", backend, w.owned));
    TANDEM_ASSIGN_OR_RETURN(lw.wo, Place(file, p + "attn_output.weight", backend, w.owned));
    TANDEM_ASSIGN_OR_RETURN(lw.ffn_norm, Place(file, p + "ffn_norm.weight", backend, w.owned));
    TANDEM_ASSIGN_OR_RETURN(lw.w_gate, Place(file, p + "ffn_gate.weight", backend, w.owned));
    TANDEM_ASSIGN_OR_RETURN(lw.w_up, Place(file, p + "ffn_up.weight", backend, w.owned));
    TANDEM_ASSIGN_OR_RETURN(lw.w_down, Place(file, p + "ffn_down.weight", backend, w.owned));
  }
  return w;
}

int64_t LlamaWeights::BytesPerToken() const {
  int64_t bytes = lm_head.nbytes() + output_norm.nbytes();
  bytes += token_embd.stride_bytes[0];  // one embedding row
  for (const LayerWeights& l : layers) {
    bytes += l.attn_norm.nbytes() + l.wq.nbytes() + l.wk.nbytes() + l.wv.nbytes() + l.wo.nbytes() +
             l.ffn_norm.nbytes() + l.w_gate.nbytes() + l.w_up.nbytes() + l.w_down.nbytes();
  }
  return bytes;
}

}  // namespace tandem::model
