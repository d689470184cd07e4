// Command-line parsing and the small commands; `serve` lives in service.cpp.
#include "app/commands.hpp"

#include <cstdio>
#include <iostream>

#include "app/service.hpp"
#include "config/settings.hpp"
#include "core/secrets.hpp"
#include "persistence/migrator.hpp"

namespace datahub::app {

namespace {

constexpr const char* usage_text = R"(DataHub API Gateway

Usage:
  datahub [serve]            run the gateway (configuration from the environment)
  datahub migrate            apply pending database migrations (needs DATABASE_URL)
  datahub migrate status     list applied and pending migrations; exits 1 when any is
                             pending or was altered after being applied
  datahub keys generate [--test]
                             print a fresh secret, e.g. for ADMIN_API_KEY
  datahub version            print the version
  datahub --help             this text

Configuration: see README.md and deploy/datahub.env.example.
)";

int print_config_errors(const std::vector<std::string>& errors) {
  for (const auto& e : errors)
    std::fprintf(stderr, "config error: %s\n", e.c_str());
  return 2;
}

std::optional<std::string> database_url() {
  auto env = config::process_env();
  auto v = env("DATABASE_URL");
  if (!v || v->empty())
    return std::nullopt;
  return v;
}

int migrate(bool status_only) {
  auto url = database_url();
  if (!url)
    return print_config_errors(
        {"DATABASE_URL is required: a PostgreSQL URL such as "
         "postgresql://user:password@host:5432/datahub"});
  if (status_only) {
    auto states = persistence::migration_status(*url);
    if (!states) {
      std::fprintf(stderr, "migrate status failed (%s): %s\n",
                   std::string{to_string(states.error().code)}.c_str(),
                   states.error().detail.c_str());
      return 1;
    }
    bool clean = true;
    for (const auto& m : *states) {
      const char* state = !m.known              ? "unknown (applied by a newer release)"
                          : !m.applied          ? "pending"
                          : !m.checksum_matches ? "ALTERED (checksum differs)"
                                                : "applied";
      if (m.known && (!m.applied || !m.checksum_matches))
        clean = false;
      std::printf("%-40s %s\n", m.name.c_str(), state);
    }
    return clean ? 0 : 1;
  }
  auto applied = persistence::apply_migrations(*url);
  if (!applied) {
    std::fprintf(stderr, "migrate failed (%s): %s\n",
                 std::string{to_string(applied.error().code)}.c_str(),
                 applied.error().detail.c_str());
    return 1;
  }
  if (applied->empty())
    std::printf("schema is current; nothing to apply\n");
  for (const auto& name : *applied)
    std::printf("applied %s\n", name.c_str());
  return 0;
}

}  // namespace

int run_command(const std::vector<std::string>& args) {
  const std::string cmd = args.empty() ? "serve" : args[0];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(usage_text, stdout);
    return 0;
  }
  if (cmd == "version" || cmd == "--version") {
    std::printf("datahub %s\n", DATAHUB_VERSION);
    return 0;
  }
  if (cmd == "keys" && args.size() >= 2 && args[1] == "generate") {
    const bool test = args.size() >= 3 && args[2] == "--test";
    std::printf("%s\n", core::generate_secret(test ? core::key_environment::test
                                                   : core::key_environment::live)
                            .c_str());
    return 0;
  }
  if (cmd == "migrate") {
    if (args.size() == 1)
      return migrate(false);
    if (args.size() == 2 && args[1] == "status")
      return migrate(true);
  }
  if (cmd == "serve" && args.size() <= 1) {
    auto loaded = config::load_settings(config::process_env());
    if (!loaded.value)
      return print_config_errors(loaded.errors);
    return serve(*loaded.value);
  }
  std::fprintf(stderr, "unknown command: %s\n\n%s", cmd.c_str(), usage_text);
  return 2;
}

}  // namespace datahub::app
