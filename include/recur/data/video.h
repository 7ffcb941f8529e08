#pragma once
/// \file Real video files for CNN+RNN video classification: decoding clips with OpenCV's videoio
/// (FFmpeg backend), labelled video datasets (class folders or a CSV of path,label), writing clips,
/// and the Moving Fashion generator (Fashion-MNIST items moving, rotating or zooming, 8 classes).
///
/// OpenCV is optional (CMake switch RECUR_OPENCV). Without it video_support() is false and every
/// function here except moving_fashion_class_names() throws recur::Error saying that recur was
/// built without OpenCV. No OpenCV header leaks out of this file: clips are plain uint8 buffers.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace recur::data {

/// True when recur was built with OpenCV (RECUR_HAS_OPENCV), i.e. videos can be read and written.
bool video_support();

/// How read_video turns a file into a clip.
struct VideoReadOptions {
  int64_t height = 64, width = 64;  ///< every kept frame is resized to height x width (INTER_AREA)
  bool grey = true;                 ///< true: 1 channel (BGR->grey); false: 3 channels, RGB order
  int64_t max_frames = 0;           ///< keep at most this many frames (after the stride); 0: all
  int64_t stride = 1;               ///< keep frames 0, stride, 2*stride, ... of the decoded stream
};

/// A decoded clip: frames x channels x height x width uint8 pixels.
struct Clip {
  int64_t frames = 0, channels = 1, height = 0, width = 0;
  std::vector<uint8_t> pixels;  ///< (T, C, H, W) row-major; channel planes in RGB order when C == 3
  int64_t label = -1;           ///< class index into VideoDataset::class_names; -1: unlabelled
  std::string path;             ///< the file it came from ("" when built in memory)
  int64_t numel() const { return frames * channels * height * width; }
};

/// Decodes the video at `path` with cv::VideoCapture, converts each frame to grey or RGB and
/// resizes it to opt.height x opt.width with INTER_AREA. Every frame is resized on its own, so a
/// stream whose frame size changes midway still gives uniform frames (and files of different sizes
/// give clips of the same shape). Keeps every opt.stride-th decoded frame, starting with the first,
/// until opt.max_frames are kept (decoding stops there). Throws recur::Error naming the file for: a
/// missing file, a file that is not a video / cannot be opened, zero decoded frames, bad options
/// (sizes <= 0 or > 8192, stride < 1, max_frames < 0), and a truncated or corrupt file. Truncation:
/// OpenCV 4.6 opens a cut-off file and silently decodes the frames that are whole, so when decoding
/// reaches the end of the stream the decoded count is compared with the frame count the container
/// declares (exact for .avi/.mp4/.mov/.m4v, which index their frames; other containers only
/// estimate it from the duration, so there a shortfall must exceed 10% + 2 frames). A clip cut short
/// by max_frames is not checked beyond the frames it needs. FFmpeg's own log is silenced (recur's
/// error names the file and the reason); set OPENCV_FFMPEG_LOGLEVEL (e.g. 16, errors) to see it.
Clip read_video(const std::string& path, const VideoReadOptions& opt);

/// What load_video_dataset does with a video that cannot be read.
enum class OnBadVideo { Error, Skip };

struct VideoDataset {
  std::vector<std::string> class_names;  ///< label i is class_names[i]
  std::vector<Clip> clips;               ///< in source order: class folders (sorted) then files, or CSV lines
};

/// File extensions (lower case) that count as videos when a dataset folder is scanned.
const std::vector<std::string>& video_extensions();

/// Loads a labelled video dataset. `source` is either
///  - a folder with one sub-folder per class: class names are the sorted sub-folder names (hidden
///    ones, starting with '.', are ignored), each class's videos are its files ending in .avi, .mp4,
///    .mkv, .mov or .webm (any case), sorted by name; other files are ignored; or
///  - a CSV file of `path,label` lines: an optional first line `path,label` is a header, blank lines
///    are skipped, the line is split at its last comma, both fields are trimmed, a relative path
///    resolves against the CSV's folder, and the label is a class name. Without `class_names` the
///    classes are the sorted distinct labels.
/// When `class_names` is given (e.g. the training split's) labels are mapped to it and a label not
/// in it is an error naming the file:line (CSV) or the folder. Clips are decoded in parallel
/// (up to hardware_concurrency threads, at most 8) and returned in source order. Throws
/// recur::Error for a missing source, a folder without class sub-folders, a class folder with no
/// videos (naming it), a CSV line without a comma or with an empty field (file:line), no clips at
/// all, and, with OnBadVideo::Error, the first unreadable video (naming it, as read_video does).
/// With OnBadVideo::Skip an unreadable video is left out and `warning: skipping <path>: <reason>`
/// is written to *warn (when warn is not null); if nothing is left, that is an error.
VideoDataset load_video_dataset(const std::string& source, const VideoReadOptions& opt, OnBadVideo on_bad,
                                std::ostream* warn, const std::vector<std::string>* class_names = nullptr);

/// Writes `clip` as a video file at `path` with cv::VideoWriter (FFmpeg backend when available) at
/// `fps` frames per second and the 4-character codec `fourcc` ("MJPG": motion JPEG, lossy, small;
/// "FFV1": lossless; "mp4v": MPEG-4 part 2). The container follows the extension of `path` (.avi
/// takes all three), which must have one. Grey clips are written as grey frames, or as 3-channel
/// frames (grey copied to B, G and R) when the codec cannot take grey input. The file appears whole
/// or not at all: it is written under a temporary name in the same folder and renamed into place.
/// Throws recur::Error naming the path for a malformed clip (frames/size <= 0, channels not 1 or
/// 3, pixels.size() != numel()), fps <= 0, a fourcc that is not 4 characters, a missing folder or
/// extension, or a codec this OpenCV cannot write.
void write_video(const std::string& path, const Clip& clip, double fps = 10.0, const std::string& fourcc = "MJPG");

// ---------------------------------------------------------------------------------------------
// Moving Fashion: a video classification task where only the order of the frames tells the class.

/// The 8 classes in label order: move-left, move-right, move-up, move-down, rotate-cw, rotate-ccw,
/// zoom-in, zoom-out. Classes come in reversed pairs (0,1) (2,3) (4,5) (6,7).
const std::vector<std::string>& moving_fashion_class_names();

struct MovingFashionOptions {
  std::string fashion_dir;  ///< Fashion-MNIST idx files (`recur data fetch fashion-mnist`); images only
  std::string out;          ///< output folder; must not exist or be empty
  int64_t train = 6000, valid = 1000, test = 1000;  ///< clips per split, balanced over the 8 classes
  int64_t min_frames = 8, max_frames = 20;          ///< clip length T drawn uniformly in [min, max]
  int64_t size = 64;                                ///< square canvas side in pixels (>= 16)
  uint64_t seed = 1;
  std::string fourcc = "MJPG";  ///< codec of the .avi files (see write_video)
  double fps = 10.0;
};

struct MovingFashionSummary {
  int64_t clips = 0;  ///< train + valid + test
  int64_t train = 0, valid = 0, test = 0;
  std::string out;  ///< the output folder
};

/// Generates Moving Fashion into opt.out as OUT/{train,valid,test}/<class>/<5-digit index>.avi,
/// real video files written by write_video, numbered 00000.. within each class folder. Train clips
/// use Fashion-MNIST training images (train-images-idx3-ubyte[.gz]); valid and test clips use the
/// test-set images (t10k-images-idx3-ubyte[.gz]), valid the first half and test the second, so no
/// item is shared between splits. Within a split the items are a seeded permutation of its images
/// (repeating only when a split has more clips than images). The output is a pure function of the
/// options (every clip draws from its own Rng seeded by seed, split and index; the files come out
/// byte-identical), built in OUT.tmp (a leftover one from an interrupted run is removed first) and
/// renamed to OUT at the end; an existing non-empty OUT is refused (error naming it).
///
/// Every clip is rendered on an S x S black canvas, S = opt.size; all lengths below are for S = 64
/// and scale by S/64. Per clip: T ~ U{min_frames..max_frames}; an item (28x28, white on black),
/// brightness gain ~ U[0.85, 1]; base scale b = S/64; frame t = 0..T-1 is cv::warpAffine of the
/// item with the rotation/scale/translation matrix that maps the item's centre (13.5, 13.5) to the
/// frame's centre c_t with angle a_t (degrees, counter-clockwise as displayed) and scale s_t,
/// bilinear interpolation, black border. The design rule: no single frame, nor the set of frames,
/// reveals the class within a pair; only the frame order does. Each class's parameter sequence is
/// its partner's reversed, drawn with the same probability:
///  - move-left/right/up/down: speed v ~ U[2, 3] px/frame, lowered to span/(T-1) when the path
///    would not fit (span = 64 - 28 = 36 free px, so T > 13 clips may move slower); a = 0, s = b;
///    the item's top-left along the motion axis is p_t = lo + v t (right, down) or lo + v (T-1-t)
///    (left, up) with lo ~ U[0, span - v (T-1)], and across it a constant ~ U[0, span]. So the set
///    of positions is a uniformly placed segment whichever the direction.
///  - rotate-cw/ccw: the item tilts within +-60 degrees of upright: w ~ U[6, 9] deg/frame, lowered
///    to 120/(T-1) when the turn would not fit; the segment of angles [lo, lo + w (T-1)] is placed
///    uniformly inside [-60, 60]; a_t = lo + w t (ccw) or lo + w (T-1-t) (cw); s = b; c fixed
///    ~ U[r, 64 - r]^2 with r = 14 sqrt(2) (the rotated item stays inside). (A first version
///    turned from a uniform start angle at 10-15 deg/frame; no frame-CNN + LSTM learned its
///    direction in 40 minutes: docs/RESULTS.md.)
///  - zoom-in/out: per-frame log-scale step d ~ U[log 1.04, log 1.06], lowered to
///    log(1.6/0.6)/(T-1) when needed; the segment of log-scales [lo, lo + d (T-1)] is placed
///    uniformly inside [log 0.6, log 1.6]; log(s_t/b) = lo + d t (zoom-in) or lo + d (T-1-t)
///    (zoom-out); a = 0; c fixed ~ U[h, 64 - h]^2 with h = 14 * the segment's largest scale.
/// Balanced classes: a split of n clips has n/8 per class, the first n%8 classes one more. Writes a
/// line per split to *log (when not null). Throws recur::Error for bad options (negative counts,
/// no clips, min_frames < 2, min_frames > max_frames, size < 16), missing or malformed idx files,
/// an existing non-empty OUT, and failed writes.
MovingFashionSummary make_moving_fashion(const MovingFashionOptions& opt, std::ostream* log);

}  // namespace recur::data
