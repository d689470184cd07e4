// Metric families and their exposition.
#include "core/metrics.hpp"

#include <sstream>

#include <prometheus/text_serializer.h>

namespace datahub::core {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

}  // namespace

const prometheus::Histogram::BucketBoundaries& metrics::http_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return b;
}

const prometheus::Histogram::BucketBoundaries& metrics::webhook_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{0.1, 0.5, 1, 2, 5, 10, 30};
  return b;
}

const prometheus::Histogram::BucketBoundaries& metrics::db_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1};
  return b;
}

metrics::metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      http_requests_total(BuildCounter()
                              .Name("datahub_http_requests_total")
                              .Help("Total number of HTTP requests")
                              .Register(*registry_)),
      http_request_duration_seconds(BuildHistogram()
                                        .Name("datahub_http_request_duration_seconds")
                                        .Help("HTTP request duration in seconds")
                                        .Register(*registry_)),
      rate_limit_hits_total(BuildCounter()
                                .Name("datahub_rate_limit_hits_total")
                                .Help("Total number of rate limit hits")
                                .Register(*registry_)),
      active_api_keys(BuildGauge()
                          .Name("datahub_active_api_keys")
                          .Help("Number of active API keys")
                          .Register(*registry_)),
      webhook_deliveries_total(BuildCounter()
                                   .Name("datahub_webhook_deliveries_total")
                                   .Help("Total webhook deliveries")
                                   .Register(*registry_)),
      webhook_delivery_duration_seconds(BuildHistogram()
                                            .Name("datahub_webhook_delivery_duration_seconds")
                                            .Help("Webhook delivery duration")
                                            .Register(*registry_)),
      db_query_duration_seconds(BuildHistogram()
                                    .Name("datahub_db_query_duration_seconds")
                                    .Help("Database query duration")
                                    .Register(*registry_)),
      db_connection_pool(BuildGauge()
                             .Name("datahub_db_connection_pool")
                             .Help("Database connection pool status")
                             .Register(*registry_)),
      redis_operations_total(BuildCounter()
                                 .Name("datahub_redis_operations_total")
                                 .Help("Total Redis operations")
                                 .Register(*registry_)),
      queue_rejections_total(BuildCounter()
                                 .Name("datahub_queue_rejections_total")
                                 .Help("Work refused because a bounded queue was full")
                                 .Register(*registry_)),
      connections_closed_total(BuildCounter()
                                   .Name("datahub_connections_closed_total")
                                   .Help("Client connections closed by the gateway, by reason")
                                   .Register(*registry_)),
      key_actors(BuildGauge()
                     .Name("datahub_key_actors")
                     .Help("API key actors alive on this instance")
                     .Register(*registry_)),
      upstream_errors_total(BuildCounter()
                                .Name("datahub_upstream_errors_total")
                                .Help("Proxied requests that failed upstream, by route and status")
                                .Register(*registry_)),
      usage_buffer_entries(BuildGauge()
                               .Name("datahub_usage_buffer_entries")
                               .Help("Usage key-minutes waiting to be written to PostgreSQL")
                               .Register(*registry_)) {
  // Series without labels exist from the start, so dashboards see 0 rather than nothing.
  active_api_keys.Add({});
  key_actors.Add({});
  usage_buffer_entries.Add({});
  for (const char* status : {"total", "idle", "active", "waiting"})
    db_connection_pool.Add({{"status", status}});
}

std::string metrics::serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer{}.Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace datahub::core
