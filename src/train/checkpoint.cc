#include "recur/train/checkpoint.h"

#include <set>

#include "recur/train/safetensors.h"

namespace recur::train {

namespace {

using nlohmann::json;

constexpr const char* kFormat = "recur.checkpoint.v1";

json parse_metadata_json(const SafetensorsFile& file, const std::string& key, const std::string& path) {
  const std::string& text = file.metadata.at(key);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  RECUR_CHECK(!j.is_discarded(), "checkpoint '{}': metadata '{}' is not valid JSON", path, key);
  return j;
}

}  // namespace

void save_checkpoint(const std::string& path, const nn::Module& module, const Optimizer* optimizer,
                     const json& config, const ParamEma* ema) {
  std::map<std::string, Tensor> tensors = module.state_dict();
  for (const auto& [name, t] : tensors)
    for (const char* reserved : {kOptimizerPrefix, kEmaPrefix})
      RECUR_CHECK(name.rfind(reserved, 0) != 0,
                  "save_checkpoint '{}': parameter '{}' collides with the reserved prefix '{}'", path, name, reserved);
  json metadata = {{"format", kFormat}, {"config", config.dump()}};
  if (optimizer) {
    OptimizerState st = optimizer->state_dict();
    for (auto& [key, t] : st.slots) tensors.emplace(kOptimizerPrefix + key, std::move(t));
    metadata["optimizer"] = st.scalars.dump();
  }
  if (ema) {
    for (auto& [name, t] : ema->state_dict()) tensors.emplace(kEmaPrefix + name, std::move(t));
    metadata["ema"] = ema->scalars().dump();
  }
  save_safetensors(path, tensors, metadata);
}

json read_checkpoint_config(const std::string& path) {
  SafetensorsFile file = load_safetensors(path);
  return file.metadata.count("config") ? parse_metadata_json(file, "config", path) : json::object();
}

json load_checkpoint(const std::string& path, nn::Module& module, Optimizer* optimizer, ParamEma* ema) {
  SafetensorsFile file = load_safetensors(path);

  std::map<std::string, Tensor> model, averages;
  OptimizerState opt_state;
  const std::string prefix = kOptimizerPrefix, ema_prefix = kEmaPrefix;
  for (auto& [name, t] : file.tensors) {
    if (name.rfind(prefix, 0) == 0)
      opt_state.slots.emplace(name.substr(prefix.size()), std::move(t));
    else if (name.rfind(ema_prefix, 0) == 0)
      averages.emplace(name.substr(ema_prefix.size()), std::move(t));
    else
      model.emplace(name, std::move(t));
  }

  json config = json::object();
  if (file.metadata.count("config")) config = parse_metadata_json(file, "config", path);

  // Check the model side completely before touching either the optimizer or the module, so a
  // failed load leaves both as they were.
  std::vector<std::string> missing, unexpected;
  std::set<std::string> known;
  for (const auto& [name, v] : module.named_parameters()) {
    known.insert(name);
    auto it = model.find(name);
    if (it == model.end()) {
      missing.push_back(name);
      continue;
    }
    const Tensor& t = it->second;
    RECUR_CHECK(t.shape() == v.shape() && t.dtype() == v.value().dtype(),
                "checkpoint '{}': tensor '{}' is {} {} in the file, the model expects {} {}", path, name,
                dtype_name(t.dtype()), t.shape_str(), dtype_name(v.value().dtype()), v.value().shape_str());
  }
  for (const auto& [name, t] : model)
    if (!known.count(name)) unexpected.push_back(name);
  RECUR_CHECK(missing.empty() && unexpected.empty(), "checkpoint '{}': missing tensors [{}]; unexpected tensors [{}]",
              path, fmt::join(missing, ", "), fmt::join(unexpected, ", "));

  json ema_scalars;
  if (ema) {
    RECUR_CHECK(file.metadata.count("ema"),
                "checkpoint '{}': has no moving average of the weights (it was saved without train.ema_decay)", path);
    ema_scalars = parse_metadata_json(file, "ema", path);
    try {
      ema->check_state_dict(averages, ema_scalars);
    } catch (const Error& e) {
      throw Error(fmt::format("checkpoint '{}': {}", path, e.what()));
    }
  }
  if (optimizer) {
    RECUR_CHECK(file.metadata.count("optimizer"),
                "checkpoint '{}': has no optimizer state (it was saved without an optimizer)", path);
    opt_state.scalars = parse_metadata_json(file, "optimizer", path);
    try {
      optimizer->load_state_dict(opt_state);
    } catch (const Error& e) {
      throw Error(fmt::format("checkpoint '{}': {}", path, e.what()));
    }
  }
  if (ema) ema->load_state_dict(averages, ema_scalars);
  module.load_state_dict(model);
  return config;
}

}  // namespace recur::train
