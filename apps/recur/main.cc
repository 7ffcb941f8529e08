// recur: the command-line front end.
#include <CLI/CLI.hpp>
#include <cblas.h>
#include <spdlog/spdlog.h>
#include <strings.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "commands.h"
#include "recur/core/error.h"

namespace {

// Debian 12's OpenBLAS (0.3.21) does not recognise recent Xeons and falls back to its generic
// Prescott kernels, which run sgemm about 4x slower than its AVX-512 ones on the same core. The
// kernel set is chosen when the library loads, so when the user made no choice
// (OPENBLAS_CORETYPE unset), pick one from the CPU's features and re-execute once.
void select_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE")) return;
  const char* core = openblas_get_corename();
  if (!core || strcasecmp(core, "prescott") != 0) return;
  const char* pick = __builtin_cpu_supports("avx512f") ? "SkylakeX" : __builtin_cpu_supports("avx2") ? "Haswell" : nullptr;
  if (!pick) return;
  setenv("OPENBLAS_CORETYPE", pick, 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with the generic kernels
}

}  // namespace

int main(int argc, char** argv) {
  select_blas_kernels(argv);
  CLI::App app{"recur: train and serve recurrent neural networks"};
  app.set_version_flag("--version", std::string("recur ") + RECUR_VERSION);
  app.require_subcommand(0, 1);
  recur::cli::add_bench(app);
  recur::cli::add_demo(app);
  recur::cli::add_data(app);
  recur::cli::add_train(app);
  recur::cli::add_translate(app);
  recur::cli::add_generate(app);
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
