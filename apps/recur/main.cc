// recur: the command-line front end.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#include "commands.h"
#include "recur/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"recur: train and serve recurrent neural networks"};
  app.set_version_flag("--version", std::string("recur ") + RECUR_VERSION);
  app.require_subcommand(0, 1);
  recur::cli::add_bench(app);
  recur::cli::add_demo(app);
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) std::cout << app.help();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const recur::Error& e) {
    spdlog::error("{}", e.what());
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
