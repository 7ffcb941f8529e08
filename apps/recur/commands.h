#pragma once
// Subcommand registration for the recur CLI; each lives in its own file.
#include <CLI/CLI.hpp>

namespace recur::cli {

/// `recur bench [rnn ...]`.
void add_bench(CLI::App& app);
/// `recur demo`: a small LSTM trained on generated data.
void add_demo(CLI::App& app);
/// `recur data fetch|list`.
void add_data(CLI::App& app);
/// `recur train`, `recur eval` and `recur predict`.
void add_train(CLI::App& app);

}  // namespace recur::cli
