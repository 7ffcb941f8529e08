// recur: the command-line front end.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#include "recur/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"recur: train and serve recurrent neural networks"};
  app.set_version_flag("--version", std::string("recur ") + RECUR_VERSION);
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.get_subcommands().empty()) {
      std::cout << app.help();
    }
  } catch (const recur::Error& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
