// The `datahub` command line: serve (the default), migrate, migrate status, keys generate,
// version and --help. Each command returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace datahub::app {

/// Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage.
int run_command(const std::vector<std::string>& args);

}  // namespace datahub::app
