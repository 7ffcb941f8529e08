// dist::shard: deterministic, token-balanced, disjoint, complete, and a shard for every rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "recur/core/rng.h"
#include "recur/dist/data_parallel.h"

namespace recur {
namespace {

std::vector<dist::ShardItem> random_items(int64_t n, uint64_t seed, int64_t max_tokens = 50) {
  Rng rng(seed);
  std::vector<dist::ShardItem> items;
  for (int64_t i = 0; i < n; ++i)
    items.push_back({1000 + 3 * i, 1 + static_cast<int64_t>(rng.below(static_cast<uint64_t>(max_tokens)))});
  return items;
}

TEST(DistShard, PartitionsTheBatchAndBalancesTokens) {
  for (int size : {1, 2, 3, 4, 7}) {
    for (uint64_t seed = 0; seed < 20; ++seed) {
      const auto items = random_items(5 + static_cast<int64_t>(seed) * 3, seed);
      const auto shards = dist::shard(items, size);
      ASSERT_EQ(shards.size(), static_cast<size_t>(size));
      std::multiset<int64_t> seen;
      int64_t max_item = 0;
      for (const auto& it : items) max_item = std::max(max_item, it.tokens);
      int64_t lo = INT64_MAX, hi = 0;
      for (const auto& s : shards) {
        int64_t tokens = 0;
        for (int64_t idx : s.indices) {
          seen.insert(idx);
          tokens += items[static_cast<size_t>((idx - 1000) / 3)].tokens;
        }
        EXPECT_EQ(tokens, s.tokens);
        // Batch order within a shard.
        EXPECT_TRUE(std::is_sorted(s.indices.begin(), s.indices.end()));
        lo = std::min(lo, s.tokens);
        hi = std::max(hi, s.tokens);
      }
      // Every item exactly once.
      std::multiset<int64_t> all;
      for (const auto& it : items) all.insert(it.index);
      EXPECT_EQ(seen, all) << "size " << size << " seed " << seed;
      // Greedy longest-first: the spread never exceeds the largest item.
      EXPECT_LE(hi - lo, max_item) << "size " << size << " seed " << seed;
    }
  }
}

TEST(DistShard, IsDeterministicAndGreedyLongestFirst) {
  // tokens 5, 9, 2, 9, 4, 1 over 2 ranks, longest first into the lighter shard: #1 (9) -> r0,
  // #3 (9) -> r1, #0 (5) -> r0 (tie: lower rank), #4 (4) -> r1 (9 < 14), #2 (2) -> r1 (13 < 14),
  // #5 (1) -> r0 (14 < 15).
  const std::vector<dist::ShardItem> items{{0, 5}, {1, 9}, {2, 2}, {3, 9}, {4, 4}, {5, 1}};
  const auto a = dist::shard(items, 2);
  const auto b = dist::shard(items, 2);
  ASSERT_EQ(a.size(), 2u);
  for (size_t r = 0; r < 2; ++r) EXPECT_EQ(a[r].indices, b[r].indices);
  EXPECT_EQ(a[0].indices, (std::vector<int64_t>{0, 1, 5}));
  EXPECT_EQ(a[0].tokens, 15);
  EXPECT_EQ(a[1].indices, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(a[1].tokens, 15);
  // The per-rank form agrees with the full split.
  EXPECT_EQ(dist::shard(items, 1, 2).indices, a[1].indices);
}

TEST(DistShard, TiesGoToTheLowestRankAndEarlierItems) {
  const std::vector<dist::ShardItem> items{{10, 3}, {11, 3}, {12, 3}, {13, 3}};
  const auto s = dist::shard(items, 3);
  EXPECT_EQ(s[0].indices, (std::vector<int64_t>{10, 13}));
  EXPECT_EQ(s[1].indices, (std::vector<int64_t>{11}));
  EXPECT_EQ(s[2].indices, (std::vector<int64_t>{12}));
}

TEST(DistShard, FewerItemsThanRanksGivesEmptyShards) {
  const std::vector<dist::ShardItem> items{{7, 4}, {8, 6}};
  const auto s = dist::shard(items, 4);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].indices, (std::vector<int64_t>{8}));
  EXPECT_EQ(s[1].indices, (std::vector<int64_t>{7}));
  EXPECT_TRUE(s[2].indices.empty());
  EXPECT_EQ(s[2].tokens, 0);
  EXPECT_TRUE(s[3].indices.empty());
  EXPECT_TRUE(dist::shard({}, 3)[2].indices.empty());
}

TEST(DistShard, EqualSpeedsSplitAsTokensDo) {
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const auto items = random_items(40, seed);
    const auto plain = dist::shard(items, 3);
    const auto even = dist::shard(items, 3, std::vector<double>{2.5, 2.5, 2.5});
    for (size_t r = 0; r < 3; ++r) EXPECT_EQ(plain[r].indices, even[r].indices) << "seed " << seed;
  }
}

TEST(DistShard, SpeedsBalanceFinishingTimes) {
  // tokens 6, 5, 4, 3 with rank 1 three times as fast, each to the earlier finish:
  // 6 -> r1 (6/3 < 6/1), 5 -> r1 (11/3 < 5/1), 4 -> r0 (4/1 < 15/3), 3 -> r1 (14/3 < 7/1).
  const std::vector<dist::ShardItem> items{{0, 6}, {1, 5}, {2, 4}, {3, 3}};
  const auto s = dist::shard(items, 2, std::vector<double>{1.0, 3.0});
  EXPECT_EQ(s[0].indices, (std::vector<int64_t>{2}));
  EXPECT_EQ(s[1].indices, (std::vector<int64_t>{0, 1, 3}));
  EXPECT_EQ(dist::shard(items, 0, 2, std::vector<double>{1.0, 3.0}).indices, s[0].indices);
  // In general: every item once, and finishing times (tokens / speed) apart by at most the
  // largest item on the slowest rank.
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto many = random_items(60, seed);
    const std::vector<double> speeds{1.0, 1.9, 0.6, 1.3};
    const auto shards = dist::shard(many, 4, speeds);
    std::multiset<int64_t> seen, all;
    double lo = 1e300, hi = 0;
    int64_t max_item = 0;
    for (const auto& it : many) all.insert(it.index), max_item = std::max(max_item, it.tokens);
    for (size_t r = 0; r < shards.size(); ++r) {
      seen.insert(shards[r].indices.begin(), shards[r].indices.end());
      lo = std::min(lo, static_cast<double>(shards[r].tokens) / speeds[r]);
      hi = std::max(hi, static_cast<double>(shards[r].tokens) / speeds[r]);
    }
    EXPECT_EQ(seen, all) << "seed " << seed;
    EXPECT_LE(hi - lo, static_cast<double>(max_item) / 0.6 + 1e-9) << "seed " << seed;
    // The fastest rank takes the most tokens, the slowest the fewest.
    EXPECT_GT(shards[1].tokens, shards[2].tokens) << "seed " << seed;
  }
}

TEST(DistShard, RejectsBadInput) {
  EXPECT_THROW(dist::shard({{0, 1}}, 0), Error);
  EXPECT_THROW(dist::shard({{0, -1}}, 2), Error);
  EXPECT_THROW(dist::shard({{0, 1}}, 2, 2), Error);
  EXPECT_THROW(dist::shard({{0, 1}}, 2, std::vector<double>{1.0}), Error);
  EXPECT_THROW(dist::shard({{0, 1}}, 2, std::vector<double>{1.0, 0.0}), Error);
  EXPECT_THROW(dist::shard({{0, 1}}, 2, std::vector<double>{1.0, std::nan("")}), Error);
}

}  // namespace
}  // namespace recur
