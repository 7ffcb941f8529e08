#pragma once
/// \file VideoClassifier: a CNN per frame, a recurrent network over the frames, a classifier.
///
/// Clips of different lengths travel as one packed batch (seq/packed.h): their frames are stacked
/// in the packed order (time-major, longest clip first), so the frame CNN runs once over every real
/// frame of the batch (TimeDistributed) and its (N, F) output is already the recurrent network's
/// packed input. A clip costs only its own frames.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "recur/models/seq2vec.h"
#include "recur/nn/conv.h"
#include "recur/nn/layers.h"

namespace recur::models {

/// How a frame's last feature map becomes a vector: Flatten keeps where things are (what motion
/// needs); Average is global average pooling (position-blind, smaller).
enum class FramePooling { Flatten, Average };

struct FrameCnnOptions {
  int64_t in_channels = 1;
  int64_t height = 32, width = 32;       ///< frame size
  std::vector<int64_t> channels = {16, 32, 32};  ///< one block each: conv -> group norm -> ReLU -> 2x2 max pool
  int64_t kernel = 3;                    ///< odd; "same" padding
  int64_t first_stride = 1;              ///< stride of the first convolution (2 halves big frames at once)
  int64_t norm_groups = 4;               ///< group norm groups per block (0: no normalisation)
  FramePooling pooling = FramePooling::Flatten;
  int64_t features = 128;                ///< width of the frame vector (a ReLU linear layer; 0: the pooled map as is)
  float dropout = 0.0f;                  ///< on the frame vector
};

/// The per-frame CNN: (N, C, H, W) frames -> (N, features). Its parameters are named
/// "block<i>.conv.*", "block<i>.norm.*" and "fc.*".
class FrameCnn : public nn::Module {
 public:
  FrameCnn(const FrameCnnOptions& options, Rng& init);
  Var forward(Tape& tape, const Var& frames, uint64_t seed);
  /// Width of the frame vector.
  int64_t output_size() const { return out_; }
  const FrameCnnOptions& options() const { return opt_; }

 private:
  FrameCnnOptions opt_;
  std::vector<std::shared_ptr<nn::Conv2d>> convs_;
  std::vector<std::shared_ptr<nn::GroupNorm>> norms_;
  std::shared_ptr<nn::Linear> fc_;
  int64_t out_ = 0;
};

/// Stacks clips, each (T_i, C, H, W) with T_i >= 1, into (sum T_i, C, H, W) in the packed order of
/// their lengths and fills `*layout` (PackedBatch::from_lengths). Every clip must have the same
/// C, H and W; the error names the clip and both shapes.
Tensor pack_frames(const std::vector<Tensor>& clips, PackedBatch* layout);

/// Runs `frame_model` once over all the packed frames of a batch (N, C, H, W) -> (N, F): the
/// TimeDistributed wrapper. `frame_model` must treat frames independently (no batch statistics),
/// which makes the result equal to running every clip on its own.
Var time_distributed(Tape& tape, const std::function<Var(Tape&, const Var&)>& frame_model, const Var& packed_frames);

/// Rnn: the frame vectors in order through a recurrent Seq2Vec (final state, or mean/max/attention
/// pooling). MeanFeatures: the frame-order-blind baseline, the mean of the frame vectors into the
/// same head (it can see the set of frames, never their order).
enum class Temporal { Rnn, MeanFeatures };

struct VideoClassifierOptions {
  FrameCnnOptions cnn;
  Temporal temporal = Temporal::Rnn;
  ops::CellType cell = ops::CellType::LSTM;
  int64_t hidden = 128;
  int64_t layers = 1;
  bool bidirectional = false;
  float rnn_dropout = 0.0f;
  Pooling pooling = Pooling::Last;
  std::vector<int64_t> mlp_hidden;
  float dropout = 0.0f;
  int64_t classes = 2;
  /// The CNN is not trained: its features are computed without a tape (and its parameters left
  /// out of the optimizer by the caller, see trainable_parameters()).
  bool freeze_cnn = false;
};

class VideoClassifier : public nn::Module {
 public:
  VideoClassifier(const VideoClassifierOptions& options, Rng& init);
  /// frames: (N, C, H, W) float in the packed order of `layout` (pack_frames). Returns (B, classes)
  /// logits in the layout's original clip order. `seed` drives this call's dropout masks.
  Var forward(Tape& tape, const Tensor& frames, const PackedBatch& layout, uint64_t seed);
  /// The parameters the optimizer should update: all, or all but the CNN's when it is frozen.
  std::vector<std::pair<std::string, Var>> trainable_parameters() const;
  FrameCnn& cnn() { return *cnn_; }
  const VideoClassifierOptions& options() const { return opt_; }

 private:
  VideoClassifierOptions opt_;
  std::shared_ptr<FrameCnn> cnn_;
  std::shared_ptr<Seq2Vec> rnn_;                   // Temporal::Rnn
  std::vector<std::shared_ptr<nn::Linear>> head_;  // Temporal::MeanFeatures
};

}  // namespace recur::models
