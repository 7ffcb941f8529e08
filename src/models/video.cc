#include "recur/models/video.h"

#include <string>

#include "recur/ops/basic.h"
#include "recur/ops/conv.h"
#include "recur/ops/pool.h"

namespace recur::models {

FrameCnn::FrameCnn(const FrameCnnOptions& options, Rng& init) : opt_(options) {
  RECUR_CHECK(opt_.in_channels >= 1 && opt_.height >= 1 && opt_.width >= 1,
              "FrameCnn: frames of {} channels, {}x{} pixels; all must be positive", opt_.in_channels, opt_.height,
              opt_.width);
  RECUR_CHECK(!opt_.channels.empty(), "FrameCnn: model.cnn_channels is empty; give at least one block");
  RECUR_CHECK(opt_.kernel >= 1 && opt_.kernel % 2 == 1, "FrameCnn: kernel {} must be odd and positive", opt_.kernel);
  RECUR_CHECK(opt_.first_stride >= 1, "FrameCnn: first_stride {} must be positive", opt_.first_stride);
  RECUR_CHECK(opt_.norm_groups >= 0, "FrameCnn: norm_groups {} must be >= 0", opt_.norm_groups);
  int64_t c = opt_.in_channels, h = opt_.height, w = opt_.width;
  for (size_t i = 0; i < opt_.channels.size(); ++i) {
    const int64_t out = opt_.channels[i];
    RECUR_CHECK(out >= 1, "FrameCnn: block {} has {} channels", i, out);
    RECUR_CHECK(opt_.norm_groups == 0 || out % opt_.norm_groups == 0,
                "FrameCnn: block {} has {} channels, not divisible into {} norm groups", i, out, opt_.norm_groups);
    const int64_t stride = i == 0 ? opt_.first_stride : 1;
    const std::string name = "block" + std::to_string(i);
    convs_.push_back(register_module(name + ".conv", std::make_shared<nn::Conv2d>(
                                                         c, out, opt_.kernel,
                                                         ops::Conv2dOptions::square(stride, opt_.kernel / 2), init,
                                                         opt_.norm_groups == 0)));
    if (opt_.norm_groups > 0)
      norms_.push_back(register_module(name + ".norm", std::make_shared<nn::GroupNorm>(opt_.norm_groups, out)));
    h = (h - 1) / stride + 1, w = (w - 1) / stride + 1;
    RECUR_CHECK(h >= 2 && w >= 2,
                "FrameCnn: {}x{} frames are too small for {} blocks (block {} would pool a {}x{} map); use bigger "
                "frames (data.height/width) or fewer blocks",
                opt_.height, opt_.width, opt_.channels.size(), i, h, w);
    h /= 2, w /= 2;
    c = out;
  }
  out_ = opt_.pooling == FramePooling::Flatten ? c * h * w : c;
  if (opt_.features > 0) {
    fc_ = register_module("fc", std::make_shared<nn::Linear>(out_, opt_.features, init));
    out_ = opt_.features;
  }
}

Var FrameCnn::forward(Tape& tape, const Var& frames, uint64_t seed) {
  const Shape& s = frames.shape();
  RECUR_CHECK(s.size() == 4 && s[1] == opt_.in_channels && s[2] == opt_.height && s[3] == opt_.width,
              "FrameCnn: expected frames (N, {}, {}, {}), got {}", opt_.in_channels, opt_.height, opt_.width,
              frames.value().shape_str());
  Var x = frames;
  for (size_t i = 0; i < convs_.size(); ++i) {
    x = convs_[i]->forward(tape, x);
    if (!norms_.empty()) x = norms_[i]->forward(tape, x);
    x = max_pool2d(tape, relu(tape, x), ops::Pool2dOptions::square(2, 2));
  }
  const int64_t n = x.shape()[0];
  x = opt_.pooling == FramePooling::Flatten ? reshape(tape, x, {n, x.value().numel() / std::max<int64_t>(n, 1)})
                                            : global_avg_pool2d(tape, x);
  if (fc_) x = relu(tape, fc_->forward(tape, x));
  return dropout(tape, x, opt_.dropout, seed, is_training());
}

Tensor pack_frames(const std::vector<Tensor>& clips, PackedBatch* layout) {
  RECUR_CHECK(!clips.empty(), "pack_frames: no clips");
  const Shape& first = clips[0].shape();
  RECUR_CHECK(first.size() == 4 && first[0] >= 1, "pack_frames: clip 0 is {}; expected (T >= 1, C, H, W)",
              clips[0].shape_str());
  std::vector<Tensor> rows;
  rows.reserve(clips.size());
  const int64_t frame = first[1] * first[2] * first[3];
  for (size_t i = 0; i < clips.size(); ++i) {
    const Shape& s = clips[i].shape();
    RECUR_CHECK(s.size() == 4 && s[0] >= 1 && s[1] == first[1] && s[2] == first[2] && s[3] == first[3],
                "pack_frames: clip {} is {} but clip 0 is {}; every clip needs T >= 1 frames of the same (C, H, W)", i,
                clips[i].shape_str(), clips[0].shape_str());
    rows.push_back(clips[i].view({s[0], frame}));
  }
  Tensor packed = pack_sequences(rows, layout);
  return packed.view({packed.dim(0), first[1], first[2], first[3]});
}

Var time_distributed(Tape& tape, const std::function<Var(Tape&, const Var&)>& frame_model, const Var& packed_frames) {
  Var y = frame_model(tape, packed_frames);
  RECUR_CHECK(y.shape().size() == 2 && y.shape()[0] == packed_frames.shape()[0],
              "time_distributed: the frame model turned {} frames into {}; expected one (F) row per frame",
              packed_frames.shape()[0], y.value().shape_str());
  return y;
}

VideoClassifier::VideoClassifier(const VideoClassifierOptions& options, Rng& init) : opt_(options) {
  RECUR_CHECK(opt_.classes >= 2, "VideoClassifier: {} classes; need at least 2", opt_.classes);
  cnn_ = register_module("cnn", std::make_shared<FrameCnn>(opt_.cnn, init));
  if (opt_.temporal == Temporal::Rnn) {
    Seq2VecOptions so;
    so.input_size = cnn_->output_size();
    so.cell = opt_.cell;
    so.hidden = opt_.hidden;
    so.layers = opt_.layers;
    so.bidirectional = opt_.bidirectional;
    so.rnn_dropout = opt_.rnn_dropout;
    so.pooling = opt_.pooling;
    so.mlp_hidden = opt_.mlp_hidden;
    so.dropout = opt_.dropout;
    so.outputs = opt_.classes;
    rnn_ = register_module("seq", std::make_shared<Seq2Vec>(so, init));
    return;
  }
  int64_t in = cnn_->output_size();
  for (size_t i = 0; i < opt_.mlp_hidden.size(); ++i) {
    head_.push_back(register_module("head" + std::to_string(i), std::make_shared<nn::Linear>(in, opt_.mlp_hidden[i], init)));
    in = opt_.mlp_hidden[i];
  }
  head_.push_back(register_module("out", std::make_shared<nn::Linear>(in, opt_.classes, init)));
}

Var VideoClassifier::forward(Tape& tape, const Tensor& frames, const PackedBatch& layout, uint64_t seed) {
  RECUR_CHECK(frames.ndim() == 4 && frames.dim(0) == layout.tokens(),
              "VideoClassifier: {} frames for a layout of {} frames (expected (N, C, H, W) in packed order)",
              frames.shape_str(), layout.tokens());
  auto cnn = [&](Tape& t, const Var& x) { return cnn_->forward(t, x, mix64(seed + 7)); };
  Var feats;
  if (opt_.freeze_cnn) {
    NoGrad ng(tape);
    feats = Var(time_distributed(tape, cnn, Var(frames)).value());
  } else {
    feats = time_distributed(tape, cnn, Var(frames));
  }
  if (rnn_) return rnn_->forward_features(tape, feats, layout, seed);
  const bool training = is_training();
  Var out = dropout(tape, mean_pool(tape, feats, layout), opt_.dropout, mix64(seed + 1), training);
  for (size_t i = 0; i + 1 < head_.size(); ++i)
    out = dropout(tape, relu(tape, head_[i]->forward(tape, out)), opt_.dropout, mix64(seed + 2 + i), training);
  return head_.back()->forward(tape, out);
}

std::vector<std::pair<std::string, Var>> VideoClassifier::trainable_parameters() const {
  std::vector<std::pair<std::string, Var>> out;
  for (auto& [name, v] : named_parameters())
    if (!opt_.freeze_cnn || name.rfind("cnn.", 0) != 0) out.emplace_back(name, v);
  return out;
}

}  // namespace recur::models
