// recur train / eval / translate for sequence-to-sequence tasks through the real binary: a tiny
// translation task (reversing letter strings, from TSV and from two aligned files) and a tiny
// CMUdict file for G2P; bad input: empty lines, unknown characters, over-long lines, beams wider
// than the vocabulary, mismatched parallel files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "recur/core/rng.h"
#include "recur/train/safetensors.h"
#include "test_util.h"

namespace recur {
namespace {

namespace fs = std::filesystem;

// Output lines; run_recur interleaves stderr, so warning lines are left out.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (l.rfind("warning:", 0) != 0) out.push_back(l);
  return out;
}

// "a b c" -> "c b a": words of letters, reversed.
std::pair<std::string, std::string> reverse_pair(Rng& rng) {
  const int n = 2 + static_cast<int>(rng.below(4));
  std::vector<std::string> w;
  for (int i = 0; i < n; ++i) w.push_back(std::string(1, static_cast<char>('a' + rng.below(6))));
  std::string src, tgt;
  for (int i = 0; i < n; ++i) {
    src += (i ? " " : "") + w[static_cast<size_t>(i)];
    tgt += (i ? " " : "") + w[static_cast<size_t>(n - 1 - i)];
  }
  return {src, tgt};
}

class CliSeq2Seq : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_cli_s2s_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Rng rng(5);
    for (const char* split : {"train", "valid", "test"}) {
      std::ofstream tsv(dir_ / (std::string(split) + ".tsv"));
      const int n = std::string(split) == "train" ? 600 : 40;
      for (int i = 0; i < n; ++i) {
        auto [s, t] = reverse_pair(rng);
        tsv << s << "\t" << t << "\n";
      }
    }
    std::ofstream cfg(dir_ / "rev.yaml");
    cfg << "task: translation\n"
           "data:\n  train: " << (dir_ / "train.tsv").string() << "\n  valid: " << (dir_ / "valid.tsv").string()
        << "\n  test: " << (dir_ / "test.tsv").string()
        << "\n  max_source_len: 8\n"
           "model:\n  embed: 16\n  target_embed: 16\n  encoder_hidden: 32\n  decoder_hidden: 64\n  dropout: 0.0\n"
           "  input_feeding: true\n"
           "train:\n  epochs: 6\n  batch: 16\n  lr: 0.01\n  warmup_steps: 10\n  threads: 1\n"
           "decode:\n  beam: 3\n  batch: 16\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(CliSeq2Seq, TrainEvalTranslate) {
  auto r = test::run_recur("train " + path("rev.yaml") + " --out " + path("out"));
  ASSERT_EQ(r.status, 0) << r.text;
  EXPECT_NE(r.text.find("test greedy: BLEU = "), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("test beam 3: BLEU = "), std::string::npos) << r.text;
  ASSERT_TRUE(fs::exists(dir_ / "out" / "best.safetensors"));

  auto e = test::run_recur("eval " + path("rev.yaml") + " --checkpoint " + path("out/best.safetensors") + " --json");
  ASSERT_EQ(e.status, 0) << e.text;
  const auto j = nlohmann::json::parse(lines_of(e.text).back());
  EXPECT_GT(j.at("bleu").get<double>(), 60.0) << e.text;  // reversing is easy with attention

  // Input order kept, an empty line gives an empty line, unknown tokens and an over-long line
  // (truncated, with a warning on stderr) do not stop it, a beam wider than the vocabulary works.
  {
    std::ofstream in(dir_ / "in.txt");
    in << "a b c\n\nzz a\nb a\na b c d e f a b c d\n";
  }
  auto t = test::run_recur("translate --checkpoint " + path("out/best.safetensors") + " --beam 50 --input " +
                           path("in.txt"));
  ASSERT_EQ(t.status, 0) << t.text;
  const auto out = lines_of(t.text);
  ASSERT_EQ(out.size(), 5u) << t.text;
  EXPECT_EQ(out[0], "c b a");
  EXPECT_EQ(out[1], "");
  EXPECT_EQ(out[3], "a b");
  EXPECT_NE(t.text.find("warning: line 5: 10 tokens, truncated to data.max_source_len 8"), std::string::npos) << t.text;

  auto js = test::run_recur("translate --checkpoint " + path("out/best.safetensors") +
                            " --beam 4 --n-best 3 --json < " + path("in.txt"));
  ASSERT_EQ(js.status, 0) << js.text;
  const auto jl = lines_of(js.text);
  ASSERT_EQ(jl.size(), 5u);
  const auto first = nlohmann::json::parse(jl[0]);
  EXPECT_EQ(first.at("translation"), "c b a");
  EXPECT_EQ(first.at("n_best").size(), 3u);
  ASSERT_EQ(first.at("attention").size(), 4u);  // c b a <eos>
  EXPECT_EQ(first.at("attention")[0].size(), 3u);
  EXPECT_EQ(nlohmann::json::parse(jl[1]).at("translation"), "");

  auto g = test::run_recur("translate --checkpoint " + path("out/best.safetensors") + " --sample --seed 3 --top-k 2 < " +
                           path("in.txt"));
  ASSERT_EQ(g.status, 0) << g.text;
  EXPECT_EQ(lines_of(g.text).size(), 5u);
}

// The shared epoch loop with train.ema_decay: after one epoch (which always improves on nothing)
// best.safetensors holds exactly the moving averages that last.safetensors stores beside the live
// weights, and eval reads it like any checkpoint.
TEST_F(CliSeq2Seq, MovingAverageBecomesTheBestCheckpoint) {
  auto r = test::run_recur("train " + path("rev.yaml") + " --out " + path("ema") +
                           " --set train.epochs=1 --set train.ema_decay=0.95");
  ASSERT_EQ(r.status, 0) << r.text;
  EXPECT_NE(r.text.find("; live weights: "), std::string::npos) << r.text;  // both validated
  {
    std::ifstream metrics(path("ema/metrics.jsonl"));
    bool epoch_row = false;
    for (std::string line; std::getline(metrics, line);) {
      const auto row = nlohmann::json::parse(line);
      if (row.value("kind", "") != "epoch") continue;
      epoch_row = true;
      EXPECT_TRUE(row.contains("valid_live")) << line;
    }
    EXPECT_TRUE(epoch_row);
  }
  SafetensorsFile best = load_safetensors(path("ema/best.safetensors"));
  SafetensorsFile last = load_safetensors(path("ema/last.safetensors"));
  ASSERT_TRUE(last.metadata.count("ema"));
  EXPECT_EQ(nlohmann::json::parse(last.metadata.at("ema")).at("decay"), 0.95);
  size_t differ = 0;
  for (auto& [name, t] : best.tensors) {
    ASSERT_TRUE(last.tensors.count("ema." + name)) << name;
    EXPECT_EQ(std::memcmp(t.raw(), last.tensors.at("ema." + name).raw(), t.nbytes()), 0) << name;
    differ += std::memcmp(t.raw(), last.tensors.at(name).raw(), t.nbytes()) != 0;
  }
  EXPECT_EQ(differ, best.tensors.size());
  auto e = test::run_recur("eval " + path("rev.yaml") + " --checkpoint " + path("ema/best.safetensors") + " --json");
  ASSERT_EQ(e.status, 0) << e.text;
}

TEST_F(CliSeq2Seq, AlignedFilesAndMismatchedCounts) {
  {
    std::ofstream s(dir_ / "src.txt"), t(dir_ / "tgt.txt");
    s << "a b\nc d\nb c\n";
    t << "b a\nd c\n";
  }
  auto r = test::run_recur("train " + path("rev.yaml") + " --set data.train=" + path("src.txt") + "," + path("tgt.txt") +
                           " --out " + path("out2"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.text.find("src.txt"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("tgt.txt"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("3"), std::string::npos) << r.text;
}

TEST_F(CliSeq2Seq, BadValuesAreNamed) {
  auto r = test::run_recur("train " + path("rev.yaml") + " --set train.batch=0 --out " + path("bad"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.text.find("train.batch must be at least 1"), std::string::npos) << r.text;
  r = test::run_recur("train " + path("rev.yaml") + " --set decode.batch=-3 --out " + path("bad"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.text.find("decode.batch"), std::string::npos) << r.text;
  r = test::run_recur("translate --checkpoint " + path("rev.yaml"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.text.find("rev.yaml"), std::string::npos) << r.text;
}

TEST_F(CliSeq2Seq, G2pOnATinyDictionary) {
  {
    // Words whose pronunciation is spelled out letter by letter: learnable from a few hundred.
    std::ofstream d(dir_ / "dict.txt");
    const char* phone[] = {"AE", "B", "K", "D", "EH", "F"};
    Rng rng(9);
    for (int i = 0; i < 1000; ++i) {
      std::string w, p;
      const int n = 2 + static_cast<int>(rng.below(4));
      for (int k = 0; k < n; ++k) {
        const int c = static_cast<int>(rng.below(6));
        w += static_cast<char>('A' + c);
        p += std::string(" ") + phone[c] + (k == 0 ? "1" : "0");
      }
      d << w << " " << p << "\n";
    }
  }
  std::ofstream cfg(dir_ / "g2p.yaml");
  cfg << "task: g2p\ndata:\n  dir: " << path("dict.txt")
      << "\n  test_words: 40\n  valid_words: 20\n"
         "model:\n  embed: 16\n  target_embed: 16\n  encoder_hidden: 32\n  decoder_hidden: 64\n  dropout: 0.0\n"
         "train:\n  epochs: 10\n  batch: 16\n  lr: 0.01\n  warmup_steps: 10\n  threads: 1\n"
         "decode:\n  beam: 2\n";
  cfg.close();
  auto r = test::run_recur("train " + path("g2p.yaml") + " --out " + path("g2p"));
  ASSERT_EQ(r.status, 0) << r.text;
  EXPECT_NE(r.text.find("test greedy: WER "), std::string::npos) << r.text;
  auto e = test::run_recur("eval " + path("g2p.yaml") + " --checkpoint " + path("g2p/best.safetensors") +
                           " --beam 1 --json");
  ASSERT_EQ(e.status, 0) << e.text;
  const auto j = nlohmann::json::parse(lines_of(e.text).back());
  EXPECT_EQ(j.at("words").get<int64_t>(), 40);
  EXPECT_LT(j.at("wer").get<double>(), 0.5) << e.text;
  EXPECT_LT(j.at("per").get<double>(), 0.2) << e.text;
  // --output writes source, hypothesis and references per word; the mismatches are the word errors.
  auto o = test::run_recur("eval " + path("g2p.yaml") + " --checkpoint " + path("g2p/best.safetensors") +
                           " --beam 1 --json --output " + path("hyps.tsv"));
  ASSERT_EQ(o.status, 0) << o.text;
  const auto rows = lines_of(test::read_file(path("hyps.tsv")));
  ASSERT_EQ(rows.size(), 40u);
  int64_t wrong = 0;
  for (const auto& row : rows) {
    const auto tab1 = row.find('\t'), tab2 = row.rfind('\t');
    ASSERT_TRUE(tab1 != std::string::npos && tab2 > tab1) << row;
    const std::string hyp = row.substr(tab1 + 1, tab2 - tab1 - 1), refs = " | " + row.substr(tab2 + 1) + " | ";
    EXPECT_FALSE(row.substr(0, tab1).empty()) << row;
    wrong += refs.find(" | " + hyp + " | ") == std::string::npos ? 1 : 0;
  }
  EXPECT_EQ(wrong, j.at("word_errors").get<int64_t>());
  EXPECT_FALSE(fs::exists(dir_ / "missing" / "hyps.tsv"));
  auto bad = test::run_recur("eval " + path("g2p.yaml") + " --checkpoint " + path("g2p/best.safetensors") +
                             " --beam 1 --output " + path("missing/hyps.tsv"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.text.find("missing/hyps.tsv"), std::string::npos) << bad.text;
  {
    std::ofstream in(dir_ / "words.txt");
    in << "bad\nCAFE\n\n\xc3\xa9" "a1\n";  // lower and upper case, an empty line, letters outside a-z
  }
  auto t = test::run_recur("translate --checkpoint " + path("g2p/best.safetensors") + " < " + path("words.txt"));
  ASSERT_EQ(t.status, 0) << t.text;
  const auto out = lines_of(t.text);
  ASSERT_EQ(out.size(), 4u) << t.text;
  EXPECT_EQ(out[0], "B AE D");
  EXPECT_EQ(out[1], "K AE F EH");
  EXPECT_EQ(out[2], "");
}

}  // namespace
}  // namespace recur
