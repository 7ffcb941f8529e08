#pragma once
/// \file Checkpoints: one safetensors file holding the model's state_dict (PyTorch names and
/// layouts, so PyTorch-trained weights load), the optimizer state and the model config.
///
/// Layout: model tensors under their state_dict names ("weight_ih_l0", "encoder.embedding.weight");
/// optimizer slots under "optimizer.<param name>.<slot>" ("optimizer.weight_ih_l0.exp_avg");
/// moving averages of the weights (ParamEma), when training keeps them, under "ema.<param name>";
/// metadata "config" (the config JSON), "optimizer" (type, lr, step counts as JSON), "ema" (decay and
/// update count) and "format".
///
/// Checkpoints are device-independent: a module or optimizer on a GPU is saved from host copies,
/// and loading copies every tensor onto the device its parameter lives on (a checkpoint saved on a
/// GPU loads into a CPU model and vice versa).
#include <nlohmann/json.hpp>
#include <string>

#include "recur/nn/module.h"
#include "recur/train/ema.h"
#include "recur/train/optimizer.h"

namespace recur::train {

/// Prefix of optimizer tensors inside a checkpoint.
inline constexpr const char* kOptimizerPrefix = "optimizer.";
/// Prefix of the moving averages of the weights inside a checkpoint.
inline constexpr const char* kEmaPrefix = "ema.";

/// Writes `module`'s parameters, `optimizer`'s state and `ema`'s averages (each when not null) and
/// `config` to `path` atomically (see save_safetensors).
void save_checkpoint(const std::string& path, const nn::Module& module, const Optimizer* optimizer,
                     const nlohmann::json& config, const ParamEma* ema = nullptr);

/// Loads a checkpoint into `module` and, when not null, `optimizer`; returns the stored config
/// (an empty object when the file has none, e.g. weights exported from PyTorch). Everything is
/// checked before anything is changed: missing or unexpected tensors (all listed), shape or dtype
/// mismatches (naming the tensor) and a missing or different optimizer state throw recur::Error
/// naming `path`. Optimizer tensors in the file are ignored when `optimizer` is null; so are moving
/// averages when `ema` is null, and when it is not, the file must hold them (else an error).
nlohmann::json load_checkpoint(const std::string& path, nn::Module& module, Optimizer* optimizer,
                               ParamEma* ema = nullptr);

/// The config stored in a checkpoint (an empty object when it has none), without a model: what a
/// tool needs to rebuild the model before loading it.
nlohmann::json read_checkpoint_config(const std::string& path);

}  // namespace recur::train
