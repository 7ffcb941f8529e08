// safetensors reading/writing (round trips, atomic writes, every corrupt-file case) and
// checkpoints (state_dict, optimizer state, exact resume).
#include "recur/train/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>

#include "recur/nn/module.h"
#include "recur/train/ema.h"
#include "recur/train/optimizer.h"
#include "recur/train/safetensors.h"
#include "recur/train/schedule.h"
#include "test_util.h"

namespace recur {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "recur_ckpt_XXXXXX").string();
    RECUR_CHECK(::mkdtemp(tmpl.data()) != nullptr, "mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  fs::path path_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// What an independent writer produces: length, JSON header text, data bytes (no padding rules).
std::string craft(const std::string& header, const std::string& data) { return u64_le(header.size()) + header + data; }

std::string f32_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Runs f, expecting a recur::Error whose message contains every word.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& words) {
  try {
    f();
    ADD_FAILURE() << "expected recur::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
  }
}

TEST(Safetensors, RoundTripAllDtypesAndMetadata) {
  TempDir dir;
  Rng rng(7);
  std::map<std::string, Tensor> tensors;
  tensors["f32"] = test::randn({2, 3}, rng);
  tensors["f64"] = test::randn({4}, rng, 1.0, DType::F64);
  tensors["i32"] = Tensor::from_i64({3, 1}, {-5, 0, 2147483647}).to(DType::I32);
  tensors["i64"] = Tensor::from_i64({2}, {-9223372036854775807LL, 1LL << 40});
  tensors["scalar"] = Tensor::from({}, {3.5f});
  tensors["empty"] = Tensor::zeros({0, 5});
  tensors["unicode \xc3\xa9"] = Tensor::from({1}, {1.0f});
  const json config = {{"hidden", 32}, {"cell", "lstm"}, {"layers", {1, 2}}};
  const std::string path = dir.file("t.safetensors");
  save_safetensors(path, tensors, {{"config", config}, {"note", "hello"}});

  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);  // header padded so the data starts 8-byte aligned

  for (const SafetensorsFile& f :
       {load_safetensors(path),
        parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem")}) {
    ASSERT_EQ(f.tensors.size(), tensors.size());
    for (const auto& [name, t] : tensors) {
      ASSERT_TRUE(f.tensors.count(name)) << name;
      EXPECT_TRUE(same_bytes(f.tensors.at(name), t)) << name;
    }
    EXPECT_EQ(f.metadata.at("note"), "hello");
    EXPECT_EQ(json::parse(f.metadata.at("config")), config);
  }
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"t.safetensors"});  // no temp file left behind
}

TEST(Safetensors, ReadsFileFromIndependentWriter) {
  // Written the way Python's safetensors does: __metadata__ first, entries in any order, header
  // padded with spaces, plus an unreferenced gap which readers may accept.
  TempDir dir;
  const std::string header = R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("a":{"dtype":"I64","shape":[1,1],"data_offsets":[12,20]}})"
                             "    ";
  int64_t id = -3;
  const std::string data =
      f32_bytes({1.5f, -2.0f}) + std::string(4, '\x7f') + std::string(reinterpret_cast<const char*>(&id), 8);
  const std::string path = dir.file("py.safetensors");
  write_bytes(path, craft(header, data));
  SafetensorsFile f = load_safetensors(path);
  EXPECT_EQ(f.metadata.at("format"), "pt");
  EXPECT_EQ(f.tensors.at("b").to_vector(), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(f.tensors.at("a").shape(), (Shape{1, 1}));
  EXPECT_EQ(f.tensors.at("a").data<int64_t>()[0], -3);
}

TEST(Safetensors, SaveIntoMissingDirectoryFailsAndWritesNothing) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/x.safetensors");
  expect_error([&] { save_safetensors(path, {{"w", Tensor::zeros({2})}}); }, {path, "No such file or directory"});
  EXPECT_TRUE(dir.listing().empty());
}

TEST(Safetensors, SaveOverDirectoryFailsAndRemovesTempFile) {
  TempDir dir;
  const std::string path = dir.file("target");
  fs::create_directories(fs::path(path) / "occupied");
  expect_error([&] { save_safetensors(path, {{"w", Tensor::zeros({2})}}); }, {path, "rename", "directory"});
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"target"});
}

TEST(Safetensors, FailedSaveKeepsExistingGoodFile) {
  TempDir dir;
  const std::string path = dir.file("good.safetensors");
  save_safetensors(path, {{"w", Tensor::from({2}, {1, 2})}});
  const std::string before = read_bytes(path);
  // The temp file cannot be created (its name is taken by a directory): a real I/O failure.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  fs::create_directory(tmp);
  expect_error([&] { save_safetensors(path, {{"w", Tensor::from({2}, {3, 4})}}); }, {path, "temporary", "directory"});
  fs::remove(tmp);
  EXPECT_EQ(read_bytes(path), before);
  // Invalid input fails before anything is written.
  expect_error([&] { save_safetensors(path, {{"w", Tensor()}}); }, {path, "undefined"});
  expect_error([&] { save_safetensors(path, {{"w", Tensor::zeros({1})}}, json::array({1})); }, {path, "metadata"});
  expect_error([&] { save_safetensors(path, {{"__metadata__", Tensor::zeros({1})}}); }, {path, "reserved"});
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"good.safetensors"});
  EXPECT_EQ(load_safetensors(path).tensors.at("w").to_vector(), (std::vector<float>{1, 2}));
}

TEST(Safetensors, MissingFileIsAClearError) {
  TempDir dir;
  expect_error([&] { load_safetensors(dir.file("absent.safetensors")); }, {"absent.safetensors", "No such file"});
  expect_error([&] { load_safetensors(dir.file("")); }, {"not a regular file"});
}

// One corrupt file per case: the bytes and the words the error must contain.
struct CorruptCase {
  const char* name;
  std::string bytes;
  std::vector<std::string> words;
};
void PrintTo(const CorruptCase& c, std::ostream* os) { *os << c.name; }

std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}

std::string one(const std::string& e, const std::string& data = f32_bytes({1, 2})) {
  return craft(R"({"w":)" + e + "}", data);
}

std::vector<CorruptCase> corrupt_cases() {
  const std::string good = one(entry(R"("F32")", "[2]", "[0,8]"));
  return {
      {"Empty", "", {"truncated", "0 bytes"}},
      {"ShorterThanLengthField", std::string("\x10\0\0\0", 4), {"truncated", "4 bytes"}},
      {"TruncatedData", good.substr(0, good.size() - 3), {"w", "out of range", "truncated"}},
      {"TruncatedHeader", good.substr(0, 20), {"truncated", "header length"}},
      {"HeaderLengthLargerThanFile", u64_le(1000) + "{}", {"header length 1000", "exceeds"}},
      {"HeaderLengthAbsurd", u64_le(1ull << 62) + "{}", {"header length", "limit"}},
      {"MalformedJson", craft(R"({"w": {"dtype": )", ""), {"malformed JSON"}},
      {"InvalidUtf8", craft("{\"\xff\xfe\": 1}", ""), {"malformed JSON"}},
      {"NumberOverflowInJson", craft(R"({"w": 1e999})", ""), {"malformed JSON"}},
      {"HeaderNotObject", craft("[1, 2]", ""), {"must be an object"}},
      {"EntryNotObject", craft(R"({"w": 5})", ""), {"'w'", "must be an object"}},
      {"MissingDtype", one(R"({"shape":[2],"data_offsets":[0,8]})"), {"'w'", "no 'dtype'"}},
      {"MissingShape", one(R"({"dtype":"F32","data_offsets":[0,8]})"), {"'w'", "no 'shape'"}},
      {"MissingDataOffsets", one(R"({"dtype":"F32","shape":[2]})"), {"'w'", "no 'data_offsets'"}},
      {"DtypeNotString", one(entry("5", "[2]", "[0,8]")), {"'w'", "'dtype' must be a string"}},
      {"ShapeNotArray", one(entry(R"("F32")", R"("2")", "[0,8]")), {"'w'", "'shape' must be an array"}},
      {"ShapeDimNotInteger", one(entry(R"("F32")", "[2.5]", "[0,8]")), {"'w'", "shape[0]", "integer"}},
      {"OffsetsNotPair", one(entry(R"("F32")", "[2]", "[8]")), {"'w'", "data_offsets", "[begin, end]"}},
      {"OffsetNotInteger", one(entry(R"("F32")", "[2]", R"([0,"8"])")), {"'w'", "data_offsets[1]", "integer"}},
      {"UnknownDtype", one(entry(R"("Q7")", "[2]", "[0,8]")), {"'w'", "unsupported dtype 'Q7'"}},
      {"Bf16Unsupported", one(entry(R"("BF16")", "[4]", "[0,8]")), {"'w'", "unsupported dtype 'BF16'"}},
      {"F16Unsupported", one(entry(R"("F16")", "[4]", "[0,8]")), {"'w'", "unsupported dtype 'F16'"}},
      {"NegativeDim", one(entry(R"("F32")", "[-2]", "[0,8]")), {"'w'", "shape[0]", "negative"}},
      {"DimBeyondInt64", one(entry(R"("F32")", "[18446744073709551615]", "[0,8]")), {"'w'", "overflows int64"}},
      {"ShapeProductOverflows", one(entry(R"("F32")", "[4611686018427387904,4,0]", "[0,0]")), {"'w'", "overflow"}},
      {"ByteCountOverflows", one(entry(R"("F64")", "[4611686018427387904]", "[0,8]")), {"'w'", "needs too many bytes"}},
      {"NegativeOffset", one(entry(R"("F32")", "[2]", "[-8,0]")), {"'w'", "data_offsets[0]", "negative"}},
      {"OffsetsOutOfRange", one(entry(R"("F32")", "[2]", "[8,16]")), {"'w'", "out of range", "8 bytes"}},
      {"OffsetsReversed", one(entry(R"("F32")", "[0]", "[8,0]")), {"'w'", "reversed"}},
      {"SizeMismatch", one(entry(R"("F32")", "[3]", "[0,8]")), {"'w'", "span 8 bytes", "needs 12 bytes"}},
      {"Overlap",
       craft(R"({"a":)" + entry(R"("F32")", "[2]", "[0,8]") + R"(,"b":)" + entry(R"("F32")", "[2]", "[4,12]") + "}",
             f32_bytes({1, 2, 3})),
       {"'a'", "'b'", "overlap"}},
      {"MetadataNotObject", craft(R"({"__metadata__": "x"})", ""), {"'__metadata__' must be an object"}},
      {"MetadataValueNotString", craft(R"({"__metadata__": {"epoch": 3}})", ""), {"'epoch'", "must be a string"}},
  };
}

class SafetensorsCorrupt : public ::testing::TestWithParam<CorruptCase> {};

TEST_P(SafetensorsCorrupt, RejectedWithClearError) {
  const CorruptCase& c = GetParam();
  TempDir dir;
  const std::string path = dir.file(std::string(c.name) + ".safetensors");
  write_bytes(path, c.bytes);
  std::vector<std::string> words = c.words;
  words.push_back(path);
  expect_error([&] { load_safetensors(path); }, words);
  words.back() = "in-memory-name";
  expect_error(
      [&] { parse_safetensors(reinterpret_cast<const uint8_t*>(c.bytes.data()), c.bytes.size(), "in-memory-name"); },
      words);
}

INSTANTIATE_TEST_SUITE_P(Safetensors, SafetensorsCorrupt, ::testing::ValuesIn(corrupt_cases()),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(Safetensors, GapsAndEmptyTensorsAreAccepted) {
  const std::string bytes =
      craft(R"({"a":)" + entry(R"("F32")", "[1]", "[4,8]") + R"(,"e":)" + entry(R"("F32")", "[0,3]", "[6,6]") + "}",
            f32_bytes({9, 7}));
  SafetensorsFile f = parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "gap");
  EXPECT_EQ(f.tensors.at("a").to_vector(), std::vector<float>{7});
  EXPECT_EQ(f.tensors.at("e").shape(), (Shape{0, 3}));
}

TEST(Safetensors, FuzzSeedCorpusIsValid) {
  // scripts/make_fuzz_corpus.sh writes these with printf: a second independent writer.
  const fs::path corpus = fs::path(RECUR_FIXTURE_DIR).parent_path() / "fuzz" / "corpus";
  int files = 0;
  for (const auto& e : fs::directory_iterator(corpus)) {
    EXPECT_NO_THROW(load_safetensors(e.path().string())) << e.path();
    ++files;
  }
  EXPECT_GE(files, 3);
  SafetensorsFile f = load_safetensors((corpus / "all_dtypes.safetensors").string());
  EXPECT_EQ(f.tensors.at("a").item(), 1.0);
  EXPECT_EQ(f.tensors.at("b").data<int64_t>()[0], -3);
  EXPECT_EQ(f.tensors.at("c").data<int32_t>()[0], 7);
  EXPECT_EQ(f.tensors.at("e").shape(), (Shape{0, 3}));
  EXPECT_EQ(json::parse(f.metadata.at("config")), json({{"hidden", 4}}));
}

TEST(Safetensors, ReadsPyTorchWrittenFixtures) {
  // tests/fixtures/*.safetensors come from Python's safetensors writer (make_rnn_fixtures.py).
  int files = 0;
  for (const auto& e : fs::directory_iterator(RECUR_FIXTURE_DIR)) {
    if (e.path().extension() != ".safetensors") continue;
    SafetensorsFile f;
    ASSERT_NO_THROW(f = load_safetensors(e.path().string())) << e.path();
    EXPECT_FALSE(f.tensors.empty()) << e.path();
    ++files;
  }
  if (files == 0) GTEST_SKIP() << "no fixtures in " << RECUR_FIXTURE_DIR;
}

// A small model with a child module, like the real ones: names "weight", "bias", "proj.weight".
class Proj : public nn::Module {
 public:
  explicit Proj(Rng& rng) { register_parameter("weight", test::randn({3, 2}, rng)); }
};

class TinyModel : public nn::Module {
 public:
  explicit TinyModel(uint64_t seed, bool with_frozen = false) {
    Rng rng(seed);
    register_parameter("weight", test::randn({2, 4}, rng));
    register_parameter("bias", test::randn({4}, rng));
    register_module("proj", std::make_shared<Proj>(rng));
    // Never receives a gradient: the optimizers must skip it.
    if (with_frozen) register_parameter("frozen", test::randn({2}, rng));
  }
};

// Gradient of a quadratic loss 0.5 * sum a_i (p_i - target_i(step))^2 written straight into grad().
void fill_grads(nn::Module& m, int64_t step) {
  int64_t k = 0;
  for (auto& [name, v] : m.named_parameters()) {
    if (name == "frozen") continue;
    float* g = v.grad().f32();
    const float* p = v.value().f32();
    for (int64_t i = 0; i < v.value().numel(); ++i, ++k) {
      const float a = 0.5f + 0.1f * static_cast<float>(k % 5);
      const float target = std::sin(0.3f * static_cast<float>(step) + static_cast<float>(k));
      g[i] = a * (p[i] - target);
    }
  }
}

void train_steps(nn::Module& m, train::Optimizer& opt, int64_t from, int64_t to) {
  const train::LrScheduleOptions sched{
      .kind = train::LrScheduleKind::Cosine, .base_lr = 0.05, .warmup_steps = 3, .total_steps = 20, .min_lr = 0.001};
  for (int64_t s = from; s < to; ++s) {
    opt.zero_grad();
    fill_grads(m, s);
    train::clip_grad_norm(m.parameters(), 0.5);
    opt.set_lr(train::lr_at(sched, s));
    opt.step();
  }
}

TEST(Checkpoint, StateDictRoundTripIntoModule) {
  TempDir dir;
  TinyModel a(1), b(2);
  const std::string path = dir.file("m.safetensors");
  const json config = {{"model", "tiny"}, {"hidden", 4}};
  train::save_checkpoint(path, a, nullptr, config);
  SafetensorsFile raw = load_safetensors(path);
  EXPECT_EQ(raw.tensors.size(), 3u);
  EXPECT_TRUE(raw.tensors.count("proj.weight"));
  EXPECT_EQ(json::parse(raw.metadata.at("config")), config);

  EXPECT_EQ(train::load_checkpoint(path, b, nullptr), config);
  for (const auto& [name, t] : a.state_dict()) EXPECT_TRUE(same_bytes(b.state_dict().at(name), t)) << name;
}

TEST(Checkpoint, PlainWeightsFileLoadsWithEmptyConfig) {
  TempDir dir;
  TinyModel a(1), b(2);
  const std::string path = dir.file("plain.safetensors");
  save_safetensors(path, a.state_dict());
  EXPECT_EQ(train::load_checkpoint(path, b, nullptr), json::object());
  EXPECT_TRUE(same_bytes(b.state_dict().at("weight"), a.state_dict().at("weight")));
}

TEST(Checkpoint, MissingAndUnexpectedTensorsAreListed) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  std::map<std::string, Tensor> sd = TinyModel(1).state_dict();
  sd.erase("bias");
  sd.erase("proj.weight");
  sd["extra.one"] = Tensor::zeros({1});
  sd["extra.two"] = Tensor::zeros({1});
  save_safetensors(path, sd);
  TinyModel b(2);
  const std::vector<float> before = b.state_dict().at("weight").to_vector();
  expect_error([&] { train::load_checkpoint(path, b, nullptr); },
               {path, "missing", "bias", "proj.weight", "unexpected", "extra.one", "extra.two"});
  EXPECT_EQ(b.state_dict().at("weight").to_vector(), before);  // a failed load changes nothing
}

TEST(Checkpoint, ShapeMismatchNamesTensor) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  std::map<std::string, Tensor> sd = TinyModel(1).state_dict();
  sd["proj.weight"] = Tensor::zeros({2, 3});
  save_safetensors(path, sd);
  TinyModel b(2);
  expect_error([&] { train::load_checkpoint(path, b, nullptr); }, {path, "proj.weight", "(2, 3)", "(3, 2)"});
  sd["proj.weight"] = Tensor::zeros({3, 2}, DType::F64);
  save_safetensors(path, sd);
  expect_error([&] { train::load_checkpoint(path, b, nullptr); }, {path, "proj.weight", "F64", "F32"});
}

TEST(Checkpoint, OptimizerStateMustMatch) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  TinyModel a(1);
  train::Adam adam(a.named_parameters(), train::AdamOptions{});
  train_steps(a, adam, 0, 4);
  train::save_checkpoint(path, a, &adam, json::object());
  SafetensorsFile raw = load_safetensors(path);
  EXPECT_TRUE(raw.tensors.count("optimizer.weight.exp_avg"));
  EXPECT_TRUE(raw.tensors.count("optimizer.proj.weight.exp_avg_sq"));
  EXPECT_EQ(json::parse(raw.metadata.at("optimizer"))["step"], 4);

  TinyModel b(2);
  train::Sgd sgd(b.named_parameters(), train::SgdOptions{.momentum = 0.9});
  expect_error([&] { train::load_checkpoint(path, b, &sgd); }, {path, "adam", "sgd"});
  EXPECT_NE(b.state_dict().at("weight").to_vector(), a.state_dict().at("weight").to_vector());

  const std::string no_opt = dir.file("no_opt.safetensors");
  train::save_checkpoint(no_opt, a, nullptr, json::object());
  train::Adam adam_b(b.named_parameters(), train::AdamOptions{});
  expect_error([&] { train::load_checkpoint(no_opt, b, &adam_b); }, {no_opt, "no optimizer state"});

  // Optimizer tensors are ignored when no optimizer is given; a removed slot is reported.
  EXPECT_NO_THROW(train::load_checkpoint(path, b, nullptr));
  raw.tensors.erase("optimizer.bias.exp_avg");
  json meta = json::object();
  for (const auto& [k, v] : raw.metadata) meta[k] = v;
  save_safetensors(path, raw.tensors, meta);
  expect_error([&] { train::load_checkpoint(path, b, &adam_b); }, {path, "missing", "bias.exp_avg"});
}

// Saves after k steps, loads into a fresh model and optimizer, continues: must be bit-identical
// to training without the interruption.
void check_exact_resume(const std::function<std::unique_ptr<train::Optimizer>(nn::Module&)>& make) {
  TempDir dir;
  const int64_t k = 7, total = 16;
  TinyModel straight(1, true);
  auto opt_straight = make(straight);
  train_steps(straight, *opt_straight, 0, total);

  TinyModel first(1, true);
  auto opt_first = make(first);
  train_steps(first, *opt_first, 0, k);
  const std::string path = dir.file("resume.safetensors");
  train::save_checkpoint(path, first, opt_first.get(), {{"steps", k}});

  TinyModel resumed(99, true);  // different initial weights: everything must come from the file
  auto opt_resumed = make(resumed);
  EXPECT_EQ(train::load_checkpoint(path, resumed, opt_resumed.get())["steps"], k);
  EXPECT_EQ(opt_resumed->step_count(), k);
  train_steps(resumed, *opt_resumed, k, total);

  for (const auto& [name, t] : straight.state_dict()) EXPECT_TRUE(same_bytes(resumed.state_dict().at(name), t)) << name;
  train::OptimizerState s1 = opt_straight->state_dict(), s2 = opt_resumed->state_dict();
  EXPECT_EQ(s1.scalars, s2.scalars);
  ASSERT_EQ(s1.slots.size(), s2.slots.size());
  for (const auto& [name, t] : s1.slots) EXPECT_TRUE(same_bytes(s2.slots.at(name), t)) << name;
  EXPECT_FALSE(s1.scalars["param_steps"].contains("frozen"));
  EXPECT_TRUE(same_bytes(straight.state_dict().at("frozen"), TinyModel(1, true).state_dict().at("frozen")));
}

TEST(Checkpoint, ExactResumeAdam) {
  check_exact_resume([](nn::Module& m) {
    return std::make_unique<train::Adam>(m.named_parameters(), train::AdamOptions{.weight_decay = 0.01});
  });
}

TEST(Checkpoint, ExactResumeAdamW) {
  check_exact_resume([](nn::Module& m) {
    return std::make_unique<train::AdamW>(m.named_parameters(), train::AdamWOptions{.beta2 = 0.99});
  });
}

TEST(Checkpoint, ExactResumeSgdNesterov) {
  check_exact_resume([](nn::Module& m) {
    return std::make_unique<train::Sgd>(m.named_parameters(),
                                        train::SgdOptions{.momentum = 0.9, .weight_decay = 1e-3, .nesterov = true});
  });
}

// The moving average of the weights travels in last.safetensors: resuming from it continues the
// average exactly; files without it are a clear error when one is wanted, and are otherwise fine.
TEST(Checkpoint, MovingAverageResumesExactly) {
  TempDir dir;
  const int64_t k = 6, total = 15;
  auto run = [](nn::Module& m, train::Optimizer& opt, train::ParamEma& ema, int64_t from, int64_t to) {
    for (int64_t s = from; s < to; ++s) {
      train_steps(m, opt, s, s + 1);
      ema.update();
    }
  };
  TinyModel straight(1, true);
  train::Adam opt_straight(straight.named_parameters(), train::AdamOptions{});
  train::ParamEma ema_straight(straight.named_parameters(), 0.8);
  run(straight, opt_straight, ema_straight, 0, total);

  TinyModel first(1, true);
  train::Adam opt_first(first.named_parameters(), train::AdamOptions{});
  train::ParamEma ema_first(first.named_parameters(), 0.8);
  run(first, opt_first, ema_first, 0, k);
  const std::string path = dir.file("ema.safetensors");
  train::save_checkpoint(path, first, &opt_first, json::object(), &ema_first);
  SafetensorsFile raw = load_safetensors(path);
  EXPECT_TRUE(raw.tensors.count("ema.weight"));
  EXPECT_TRUE(raw.tensors.count("ema.proj.weight"));
  EXPECT_EQ(json::parse(raw.metadata.at("ema"))["updates"], k);

  TinyModel resumed(99, true);
  train::Adam opt_resumed(resumed.named_parameters(), train::AdamOptions{});
  train::ParamEma ema_resumed(resumed.named_parameters(), 0.8);
  train::load_checkpoint(path, resumed, &opt_resumed, &ema_resumed);
  EXPECT_EQ(ema_resumed.updates(), k);
  run(resumed, opt_resumed, ema_resumed, k, total);
  const auto a = ema_straight.state_dict(), b = ema_resumed.state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(same_bytes(b.at(name), t)) << name;
  for (const auto& [name, t] : straight.state_dict()) EXPECT_TRUE(same_bytes(resumed.state_dict().at(name), t)) << name;

  // Without an average to restore, its tensors are ignored (e.g. translate loading `last`).
  TinyModel plain(3, true);
  EXPECT_NO_THROW(train::load_checkpoint(path, plain, nullptr));
  EXPECT_TRUE(same_bytes(plain.state_dict().at("weight"), first.state_dict().at("weight")));

  // Asking for one from a file without: an error naming the file and the key, nothing changed.
  const std::string no_ema = dir.file("no_ema.safetensors");
  train::save_checkpoint(no_ema, first, &opt_first, json::object());
  TinyModel c(4, true);
  train::Adam opt_c(c.named_parameters(), train::AdamOptions{});
  train::ParamEma ema_c(c.named_parameters(), 0.8);
  const std::vector<float> before = c.state_dict().at("weight").to_vector();
  expect_error([&] { train::load_checkpoint(no_ema, c, &opt_c, &ema_c); }, {no_ema, "train.ema_decay"});
  EXPECT_EQ(c.state_dict().at("weight").to_vector(), before);
  EXPECT_EQ(opt_c.step_count(), 0);

  // A different decay is reported before the optimizer or the model change.
  train::ParamEma ema_other(c.named_parameters(), 0.5);
  expect_error([&] { train::load_checkpoint(path, c, &opt_c, &ema_other); }, {path, "decay 0.8", "configured 0.5"});
  EXPECT_EQ(opt_c.step_count(), 0);
  EXPECT_EQ(c.state_dict().at("weight").to_vector(), before);
}

}  // namespace
}  // namespace recur
