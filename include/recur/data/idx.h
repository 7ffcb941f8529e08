#pragma once
/// \file Fashion-MNIST in the idx format (the format of LeCun's MNIST files), read as sequences:
/// each 28x28 image becomes 28 steps of 28 pixels, the usual "row-by-row" RNN benchmark.
#include <cstdint>
#include <string>
#include <vector>

#include "recur/data/dataset.h"

namespace recur::data {

/// The ten Fashion-MNIST class names, in label order.
const std::vector<std::string>& fashion_mnist_class_names();

/// Loads split "train" (60,000 images) or "test" (10,000) from `dir`, the folder that
/// `recur data fetch fashion-mnist` returns: {train,t10k}-images-idx3-ubyte[.gz] and
/// {train,t10k}-labels-idx1-ubyte[.gz] (gzip or plain; the .gz name is tried first). Each example
/// is (28, 28) float32 pixels / 255 with a label in 0..9. `limit` > 0 keeps the first `limit`
/// examples (the files are still validated whole). Throws recur::Error naming the file and the
/// problem: missing file, bad magic number, dims other than 28x28, image and label counts that
/// differ, a short/truncated or overlong file, a corrupt gzip stream, a label above 9.
SequenceDataset load_fashion_mnist_rows(const std::string& dir, const std::string& split, int64_t limit = 0);

/// Raw contents of one idx file after validation.
struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  ///< (count, rows, cols) row-major
};
/// Reads an idx3 image file (magic 2051), gzip or plain, and checks the dims are rows x cols.
IdxImages read_idx_images(const std::string& path, int64_t rows, int64_t cols);
/// Reads an idx1 label file (magic 2049), gzip or plain, and checks every label is < num_classes.
std::vector<uint8_t> read_idx_labels(const std::string& path, int64_t num_classes);

/// A single mean and standard deviation over every pixel, fitted on the training split and
/// applied to every split (the usual Fashion-MNIST normalisation).
struct PixelNorm {
  float mean = 0.0f;
  float std = 1.0f;
};

/// Mean and standard deviation over all feature values of a float32 dataset.
PixelNorm fit_pixel_norm(const SequenceDataset& ds);
/// features = (features - mean) / std, in place (std must be > 0).
void apply_pixel_norm(SequenceDataset& ds, PixelNorm norm);

}  // namespace recur::data
