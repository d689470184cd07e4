// `datahub serve`: composes the layers (actor system, PostgreSQL pool, key registry, usage
// recorder, HTTP server) and runs them until SIGTERM or SIGINT; SIGHUP reloads the routes.
#pragma once

#include "config/settings.hpp"

namespace datahub::app {

/// Runs the gateway; returns the exit code (0 after a clean shutdown).
int serve(const config::settings& settings);

}  // namespace datahub::app
